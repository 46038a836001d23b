using System.Collections.Concurrent;
using CsCheck;
using Ferry.Storage.Replication;

namespace Ferry.Tests.Replication;

public class SyncSimulationTests
{
    // In every random history: no decision discards an acknowledged write only one copy has, split brain
    // is reported exactly when both copies have such writes, both ends reach mirrored decisions, a
    // finished resync leaves identical data and copies that compare as NoSync, and a cut-short resync
    // resumes. Every random choice comes from CsCheck, which prints the seed of a failing history.
    [Fact]
    public void Decisions_follow_the_ground_truth_of_random_histories()
    {
        var rulesSeen = new ConcurrentDictionary<SyncRule, int>();
        SyncHistory.Steps.Sample(steps => new SyncHistory(rulesSeen).Run(steps), iter: 20_000);

        // The histories reach every rule two copies of one volume can reach, so nothing above held vacuously.
        SyncRule[] reachable =
        [
            SyncRule.FreshCopy, SyncRule.SameGeneration, SyncRule.MissedWrites, SyncRule.OlderGeneration,
            SyncRule.CrashedPrimary, SyncRule.ResyncNotFinished, SyncRule.SplitBrainSharedBitmap,
            SyncRule.SplitBrainSharedHistory, SyncRule.ManualDiscard,
        ];
        Assert.All(reachable, rule => Assert.True(rulesSeen.ContainsKey(rule), $"no history reached {rule}: {string.Join(", ", rulesSeen)}"));
    }
}
