using Akka.Actor;
using Akka.Serialization;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace Ect.Actors.Control;

/// <summary>
/// Stands in, on the control endpoint's ActorSystem and on `ect ctl`'s, for every serializer that Akka and Akka.Remote
/// register by default (Newtonsoft JSON for any CLR type, protobuf for any IMessage by type name, byte arrays,
/// primitives, Akka's own misc, system and deployment messages): a peer that names one of them gets its message
/// refused (Akka.Remote logs the refusal and drops the message), and nothing but the control protocol
/// (<see cref="ControlSerializer"/>) and the actor-selection envelope around it can be read off the wire.
/// Outbound, a message of any other type fails here instead of travelling in a general-purpose format.
/// Bound in <see cref="ControlEndpoint.SerializationConfig"/>.
/// </summary>
public sealed class WireRefusingSerializer : SerializerWithStringManifest
{
    /// <summary>Serializer id (unique in the ActorSystem; user ids must be above 100).</summary>
    public const int SerializerId = 7302;

    public WireRefusingSerializer(ExtendedActorSystem system) : base(system) { }

    /// <summary>Akka passes a name's serialization-settings section (json has one) to this constructor: ignored.</summary>
    public WireRefusingSerializer(ExtendedActorSystem system, Akka.Configuration.Config settings) : base(system) { }

    public override int Identifier => SerializerId;

    public override string Manifest(object o) => throw Refused(o.GetType().FullName ?? o.GetType().Name);

    public override byte[] ToBinary(object obj) => throw Refused(obj.GetType().FullName ?? obj.GetType().Name);

    public override object FromBinary(byte[] bytes, string manifest) =>
        throw new SerializationException(
            $"control endpoint: refused an inbound message of kind '{manifest}': only the control protocol (ControlRequest) is accepted from the network.");

    private static SerializationException Refused(string type) =>
        new($"control endpoint: {type} is not a control protocol message; only ControlRequest, RunCommand and RunCommandReply travel on the control connection.");
}
