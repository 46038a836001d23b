using Ferry.Hypervisor;
using Ferry.Agent.Vms;

namespace Ferry.Tests.Agent;

public class VmOperationRulesTests
{
    // The whole table: state x operation -> decision. P = proceed, D = already done, R = refuse.
    [Theory]
    [InlineData(VmState.Stopped, "P", "D", "R", "R", "R", "P")]
    [InlineData(VmState.Crashed, "P", "D", "R", "R", "R", "P")]
    [InlineData(VmState.Running, "D", "P", "P", "P", "D", "R")]
    [InlineData(VmState.Paused, "D", "P", "P", "D", "P", "R")]
    [InlineData(VmState.Starting, "R", "R", "R", "R", "R", "R")]
    [InlineData(VmState.Stopping, "R", "R", "R", "R", "R", "R")]
    public void Every_state_and_operation_has_one_decision(VmState state, string start, string stop, string restart, string pause, string resume, string delete)
    {
        string[] expected = [start, stop, restart, pause, resume, delete];
        VmOperation[] operations = [VmOperation.Start, VmOperation.Stop, VmOperation.Restart, VmOperation.Pause, VmOperation.Resume, VmOperation.Delete];
        for (var i = 0; i < operations.Length; i++)
        {
            var (decision, error) = VmOperationRules.Decide("vm1", state, operations[i]);
            var code = decision switch { OperationDecision.Proceed => "P", OperationDecision.AlreadyDone => "D", _ => "R" };
            Assert.True(expected[i] == code, $"{state} + {operations[i]}: expected {expected[i]}, got {code}");
            Assert.Equal(decision == OperationDecision.Refuse, error is not null);
            if (error is not null)
            {
                Assert.Equal(ErrorCode.WrongState, error.Code);
                Assert.Contains("'vm1'", error.Message, StringComparison.Ordinal);
            }
        }
    }
}
