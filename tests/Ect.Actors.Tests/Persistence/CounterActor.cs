using Akka.Actor;
using Akka.Persistence;
using Akka.Serialization;
using Ect.Actors.Tests.Persistence.Proto;
using Google.Protobuf;

namespace Ect.Actors.Tests.Persistence;

// A small persistent actor for the persistence tests (PostgreSQL recovery, `ect runs` over a SQLite journal).

public sealed record CounterIncremented(long N, string Label);
public sealed record CounterSnapshot(IReadOnlyList<string> Labels)
{
    public bool Equals(CounterSnapshot? other) => other is not null && Labels.SequenceEqual(other.Labels);
    public override int GetHashCode() => Labels.Count;
}

public sealed record Add(string Label);
public sealed record TakeSnapshot;
public sealed record GetState;
public sealed record CounterState(IReadOnlyList<string> Labels, long? SnapshotSequenceNr, int EventsReplayed, long LastSequenceNr);

public sealed class CounterActor : ReceivePersistentActor
{
    private readonly List<string> _labels = [];
    private long? _snapshotSeq;
    private int _replayed;
    private IActorRef? _snapshotRequester;

    public override string PersistenceId { get; }

    public CounterActor(string persistenceId)
    {
        PersistenceId = persistenceId;
        Recover<SnapshotOffer>(o =>
        {
            _labels.Clear();
            _labels.AddRange(((CounterSnapshot)o.Snapshot).Labels);
            _snapshotSeq = o.Metadata.SequenceNr;
        });
        Recover<CounterIncremented>(e =>
        {
            if (e.N != _labels.Count + 1) throw new InvalidOperationException($"event {e.N} replayed after {_labels.Count}");
            _labels.Add(e.Label);
            _replayed++;
        });
        Command<Add>(a => Persist(new CounterIncremented(_labels.Count + 1, a.Label), e =>
        {
            _labels.Add(e.Label);
            Sender.Tell(e.N);
        }));
        Command<TakeSnapshot>(_ =>
        {
            _snapshotRequester = Sender;
            SaveSnapshot(new CounterSnapshot(_labels.ToArray()));
        });
        Command<SaveSnapshotSuccess>(s => _snapshotRequester?.Tell(s.Metadata.SequenceNr));
        Command<SaveSnapshotFailure>(f => _snapshotRequester?.Tell(new Status.Failure(f.Cause)));
        Command<GetState>(_ => Sender.Tell(new CounterState(_labels.ToArray(), _snapshotSeq, _replayed, LastSequenceNr)));
    }

    public static Props Props(string persistenceId) => Akka.Actor.Props.Create(() => new CounterActor(persistenceId));

    /// <summary>HOCON binding the counter's event and snapshot to <see cref="CounterSerializer"/>.</summary>
    public const string SerializationHocon = """
        akka.actor {
          serializers { ect-test-counter = "Ect.Actors.Tests.Persistence.CounterSerializer, Ect.Actors.Tests" }
          serialization-bindings {
            "Ect.Actors.Tests.Persistence.CounterIncremented, Ect.Actors.Tests" = ect-test-counter
            "Ect.Actors.Tests.Persistence.CounterSnapshot, Ect.Actors.Tests" = ect-test-counter
          }
        }
        """;
}

public sealed class CounterSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 7399;
    public const string EventManifest = "counter-inc";
    public const string SnapshotManifest = "counter-snap";

    public override int Identifier => Id;

    public override string Manifest(object o) => o switch
    {
        CounterIncremented => EventManifest,
        CounterSnapshot => SnapshotManifest,
        _ => throw new ArgumentException(o.GetType().Name),
    };

    public override byte[] ToBinary(object obj) => obj switch
    {
        CounterIncremented e => new CounterIncrementedMessage { N = e.N, Label = e.Label }.ToByteArray(),
        CounterSnapshot s => new CounterSnapshotMessage { Labels = { s.Labels } }.ToByteArray(),
        _ => throw new ArgumentException(obj.GetType().Name),
    };

    public override object FromBinary(byte[] bytes, string manifest) => manifest switch
    {
        EventManifest => CounterIncrementedMessage.Parser.ParseFrom(bytes) is var m ? new CounterIncremented(m.N, m.Label) : null!,
        SnapshotManifest => new CounterSnapshot(CounterSnapshotMessage.Parser.ParseFrom(bytes).Labels.ToArray()),
        _ => throw new System.Runtime.Serialization.SerializationException($"unknown manifest '{manifest}'"),
    };
}
