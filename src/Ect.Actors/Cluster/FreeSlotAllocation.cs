using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Ect.Actors.Cluster.Wire;

namespace Ect.Actors.Cluster;

/// <summary>
/// Where a new shard of run entities lives: Akka's sharding coordinator asks this strategy (its extension point for
/// placement), and it picks the node with the most free training slots, asking each region's node's
/// <see cref="SlotGate"/> (free = slots - busy - waiting); ties, and nodes that do not answer within a second, fall back
/// to the fewest shards (what Akka's least-shard strategy does). It never rebalances: moving a shard stops its
/// trainers; a run moves only when its node dies or leaves.
/// Deviation from an ideal placement: a shard holds every run whose id hashes to it, so once a shard is placed, its
/// later runs go to that node and wait there for a slot; the director releases runs against the cluster's total
/// slots, so a node can briefly queue a run while another idles. <see cref="ClusterHocon.ShardCount"/> shards keep
/// that rare for sweeps of tens of runs.
/// </summary>
public sealed class FreeSlotAllocation : IShardAllocationStrategy, IActorSystemDependentAllocationStrategy
{
    private ActorSystem? _system;

    // Shards placed in the last few seconds, whose first run may not have asked its node for a slot yet: counted as
    // taken, so a burst of releases spreads over the nodes instead of all meeting the same free one.
    private readonly List<(IActorRef Region, DateTime At)> _recent = new();
    private static readonly TimeSpan Recent = TimeSpan.FromSeconds(5);

    public void Start(ActorSystem system) => _system = system;

    public async Task<IActorRef> AllocateShard(IActorRef requester, string shardId, IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations)
    {
        var regions = currentShardAllocations.Keys.OrderBy(r => currentShardAllocations[r].Count).ThenBy(r => r.Path.ToString()).ToList();
        if (regions.Count == 0) return requester;
        if (_system is null) return regions[0];
        var self = Akka.Cluster.Cluster.Get(_system).SelfAddress;
        var answers = await Task.WhenAll(regions.Select(async region =>
        {
            var address = region.Path.Address.HasGlobalScope ? region.Path.Address : self;
            try
            {
                var slots = await _system.ActorSelection(new RootActorPath(address) / "user" / "slots").Ask<NodeSlots>(new SlotQuery(), TimeSpan.FromSeconds(1));
                return (Region: region, Free: slots.Slots - slots.Busy - slots.Waiting);
            }
            catch (Exception) { return (Region: region, Free: int.MinValue); } // no answer: last choice
        }));
        lock (_recent)
        {
            _recent.RemoveAll(r => DateTime.UtcNow - r.At > Recent);
            // Stable order first (fewest shards), then the most free slots wins.
            var chosen = answers.OrderByDescending(a => a.Free == int.MinValue ? a.Free : a.Free - _recent.Count(r => r.Region.Equals(a.Region))).First().Region;
            _recent.Add((chosen, DateTime.UtcNow));
            return chosen;
        }
    }

    public Task<IImmutableSet<string>> Rebalance(IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations, IImmutableSet<string> rebalanceInProgress) =>
        Task.FromResult<IImmutableSet<string>>(ImmutableHashSet<string>.Empty);
}
