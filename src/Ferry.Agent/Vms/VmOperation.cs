using Ferry.Hypervisor;
namespace Ferry.Agent.Vms;

public enum VmOperation
{
    Start,
    Stop,
    Restart,
    Pause,
    Resume,
    Delete,
}

/// <summary>Whether an operation runs, is already satisfied (scripts may repeat it safely), or is refused.</summary>
public enum OperationDecision
{
    Proceed,
    AlreadyDone,
    Refuse,
}

/// <summary>Which operation may run in which state. Pure, so the whole table is tested.</summary>
public static class VmOperationRules
{
    public static (OperationDecision Decision, FerryError? Error) Decide(string vm, VmState state, VmOperation operation)
    {
        if (state is VmState.Starting or VmState.Stopping)
        {
            return Refuse($"cannot {Verb(operation)} VM '{vm}': it is {Describe(state)} (try again when it has finished)");
        }

        var stopped = state is VmState.Stopped or VmState.Crashed;
        return operation switch
        {
            VmOperation.Start => stopped ? Proceed() : Done(),
            VmOperation.Stop => stopped ? Done() : Proceed(),
            VmOperation.Restart => stopped
                ? Refuse($"cannot restart VM '{vm}': it is {Describe(state)} (try: ferry vm start {vm})")
                : Proceed(),
            VmOperation.Pause => state switch
            {
                VmState.Running => Proceed(),
                VmState.Paused => Done(),
                _ => Refuse($"cannot pause VM '{vm}': it is {Describe(state)}"),
            },
            VmOperation.Resume => state switch
            {
                VmState.Paused => Proceed(),
                VmState.Running => Done(),
                _ => Refuse($"cannot resume VM '{vm}': it is {Describe(state)} (try: ferry vm start {vm})"),
            },
            VmOperation.Delete => stopped
                ? Proceed()
                : Refuse($"cannot delete VM '{vm}': it is {Describe(state)} (stop it first: ferry vm stop {vm})"),
            _ => throw new ArgumentOutOfRangeException(nameof(operation)),
        };

        static (OperationDecision, FerryError?) Proceed() => (OperationDecision.Proceed, null);
        static (OperationDecision, FerryError?) Done() => (OperationDecision.AlreadyDone, null);
        static (OperationDecision, FerryError?) Refuse(string message) => (OperationDecision.Refuse, FerryError.WrongState(message));
    }

    private static string Verb(VmOperation operation) => operation.ToString().ToLowerInvariant();

    private static string Describe(VmState state) => state.ToString().ToLowerInvariant();
}
