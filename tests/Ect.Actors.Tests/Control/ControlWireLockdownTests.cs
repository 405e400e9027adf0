using Akka.Actor;
using Akka.Configuration;
using Ect.Actors.Control;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Control;

/// <summary>
/// The control connection's serialization (issue 12, point 1): a control system reads nothing off the wire but the
/// control protocol and the selection envelope around it. Payloads made by an ordinary Akka.Remote system (which
/// can read them back, so they are valid) are refused by the control system, whatever serializer id they name.
/// </summary>
public sealed class ControlWireLockdownTests : IAsyncLifetime
{
    private ActorSystem _control = null!, _ordinary = null!;

    public Task InitializeAsync()
    {
        _control = ActorSystem.Create("ect", ControlEndpoint.Configure(ConfigurationFactory.Empty, Path.GetTempPath())
            .WithFallback(ConfigurationFactory.ParseString("akka.loglevel = ERROR")));
        _ordinary = ActorSystem.Create("ordinary", ConfigurationFactory.ParseString("""
            akka.loglevel = ERROR
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
            """));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _control.Terminate();
        await _ordinary.Terminate();
    }

    public static TheoryData<string> Payloads => new() { "record", "protobuf event", "string", "int", "bytes", "poison pill", "identify" };

    private static object Payload(string kind) => kind switch
    {
        "record" => new StopRequested("../victim.txt"),
        "protobuf event" => new ConfigChanged { Key = "ect.tuning.lr", Value = "1e308", Step = 1, IdempotencyKey = "x" },
        "string" => "../victim.txt",
        "int" => 42,
        "bytes" => new byte[] { 1, 2, 3 },
        "poison pill" => PoisonPill.Instance,
        "identify" => new Identify("x"),
        _ => throw new ArgumentException(kind),
    };

    [Theory]
    [MemberData(nameof(Payloads))]
    public void A_payload_an_ordinary_Akka_system_reads_is_refused_by_the_control_system(string kind)
    {
        var message = Payload(kind);
        var serializer = _ordinary.Serialization.FindSerializerFor(message);
        var bytes = serializer.ToBinary(message);
        var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
        _ordinary.Serialization.Deserialize(bytes, serializer.Identifier, manifest).Should().NotBeNull("the payload is valid");

        ControlEndpoint.AcceptedSerializerIds.Should().NotContain(serializer.Identifier);
        var act = () => _control.Serialization.Deserialize(bytes, serializer.Identifier, manifest);
        act.Should().Throw<Exception>($"the control system must not read a {kind} (serializer {serializer.Identifier})");
    }

    [Fact]
    public void No_serializer_id_but_the_control_protocol_and_the_selection_envelope_reads_anything()
    {
        var bytes = _ordinary.Serialization.FindSerializerFor("x").ToBinary("x");
        foreach (var id in Enumerable.Range(1, 1000).Append(WireRefusingSerializer.SerializerId).Except(ControlEndpoint.AcceptedSerializerIds))
        {
            var act = () => _control.Serialization.Deserialize(bytes, id, "System.String");
            act.Should().Throw<Exception>($"serializer id {id}");
        }
    }

    [Fact]
    public void Outbound_only_the_control_protocol_has_a_serializer()
    {
        foreach (var m in new object[] { "s", 1, new StopRequested("x"), new ConfigChanged(), PoisonPill.Instance, new byte[1] })
        {
            var serializer = _control.Serialization.FindSerializerFor(m);
            serializer.Should().BeOfType<WireRefusingSerializer>(m.GetType().Name);
            var act = () => serializer.ToBinary(m);
            act.Should().Throw<System.Runtime.Serialization.SerializationException>().WithMessage("*not a control protocol message*");
        }
        var request = new ControlRequest("token", new SetStage("k", 3));
        var s = _control.Serialization.FindSerializerFor(request);
        s.Should().BeOfType<ControlSerializer>();
        _control.Serialization.Deserialize(s.ToBinary(request), s.Identifier, Akka.Serialization.Serialization.ManifestFor(s, request))
            .Should().Be(request);
    }
}
