using System.Security.Cryptography.X509Certificates;
using Ferry.Cluster.Security;

namespace Ferry.Cluster.State;

/// <summary>
/// Which host certificates a host accepts from its peers, beyond chaining to the cluster's authority:
/// only those of hosts in the state, so a removed host (whose certificate still chains) is refused,
/// and one that joined again is accepted only with its new certificate.
/// </summary>
public static class PeerAdmission
{
    /// <summary>
    /// The check of every host-to-host TLS connection: the peer's certificate chains to the cluster's
    /// authority and belongs to a host in <paramref name="state"/> (null: this host has no state yet).
    /// </summary>
    public static bool Accepts(X509Certificate2 peer, X509Certificate2 authority, ClusterState? state) =>
        ClusterAuthority.Chains(peer, authority) && (state is null || Admits(state, ClusterAuthority.Fingerprint(peer)));

    /// <param name="state">This host's copy of the cluster state.</param>
    /// <param name="fingerprint">SHA-256 fingerprint of the certificate the peer presents.</param>
    public static bool Admits(ClusterState state, string fingerprint) =>
        // A host that is joining has no state yet: it cannot tell members apart, and only the cluster's
        // leader (certified by the authority it checked against its token) talks to it.
        state.Cluster is null || state.Hosts.Values.Any(h => h.Certificate == fingerprint);
}
