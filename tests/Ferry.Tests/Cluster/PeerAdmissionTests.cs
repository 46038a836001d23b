using Ferry.Cluster.State;
using static Ferry.Tests.Cluster.ClusterFixtures;

namespace Ferry.Tests.Cluster;

public class PeerAdmissionTests
{
    [Fact]
    public void Only_certificates_of_hosts_in_the_state_are_admitted()
    {
        var state = ThreeHosts();
        Assert.True(PeerAdmission.Admits(state, "cert-b"));
        Assert.False(PeerAdmission.Admits(state, "cert-x"));

        var removed = state.Apply(new RemoveHost("b", Force: false) { At = T0 });
        Assert.False(PeerAdmission.Admits(removed, "cert-b"));
        Assert.True(PeerAdmission.Admits(removed, "cert-c"));
    }

    [Fact]
    public void A_host_that_joins_again_is_admitted_with_its_new_certificate_only()
    {
        var rejoined = ThreeHosts().Apply(
            new RemoveHost("b", Force: false) { At = T0 },
            new IssueJoinToken("t3", "s3", T0.AddHours(1)) { At = T0 },
            new JoinHost("t3", "s3", Host("b") with { Certificate = "cert-b2" }) { At = T0.AddMinutes(5) });
        Assert.True(PeerAdmission.Admits(rejoined, "cert-b2"));
        Assert.False(PeerAdmission.Admits(rejoined, "cert-b"));
    }

    [Fact]
    public void A_host_without_state_yet_admits_any_certificate_of_its_authority() =>
        Assert.True(PeerAdmission.Admits(ClusterState.Empty, "anything"));
}
