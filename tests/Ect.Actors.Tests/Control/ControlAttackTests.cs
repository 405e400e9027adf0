using System.Collections;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.Hosting;
using Ect.Actors.Control;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Google.Protobuf;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.Control;

/// <summary>
/// Plays a hostile local process against a live daemon's control port (issue 12, point 1): a raw Akka.Remote client
/// on loopback, with Akka's default serializers (Newtonsoft JSON for any CLR type, protobuf for any IMessage), sends
/// every message type of the run (found by reflection, so new ones are covered) to every actor path of the daemon,
/// directly (a RemoteActorRef to the path, not a selection) and by actor selection, plus control requests with a wrong
/// or empty token. Nothing may change: the journal, every file (one outside the run directory named by a relative
/// path), and the run's status.
/// </summary>
public sealed class ControlAttackTests
{
    // The attacker's serializers: Akka's defaults (json for System.Object, proto for IMessage) plus the control
    // protocol's, so that it can also send well-formed control requests without the token.
    private static readonly Config AttackerConfig = ConfigurationFactory.ParseString($$"""
        akka {
          loglevel = ERROR
          stdout-loglevel = ERROR
          actor.provider = remote
          actor.serializers.ect-control = "Ect.Actors.Control.ControlSerializer, ect"
          actor.serialization-bindings {
            "Ect.Actors.Control.ControlRequest, ect" = ect-control
            "Ect.Actors.Control.RunCommand, ect" = ect-control
            "Ect.Actors.Control.RunCommandReply, ect" = ect-control
          }
          remote {
            log-remote-lifecycle-events = off
            dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
          }
        }
        """);

    [Fact]
    public async Task Every_internal_message_sent_straight_to_every_actor_changes_nothing_and_a_wrong_token_is_refused()
    {
        var parent = Directory.CreateTempSubdirectory("ect-attack-").FullName;
        var dir = Path.Combine(parent, "run");
        Directory.CreateDirectory(dir);
        var victim = Path.Combine(parent, "victim.txt");
        File.WriteAllText(victim, "must survive");

        var s = Settings("control.enabled=on", "fake.step-ms=20", "pretrain.steps=10", "tuning.steps=1000000");
        using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var started = new TaskCompletionSource<(ActorSystem Run, IActorRef Coordinator)>();
        var run = RunDaemonAsync(dir, s, stop: guard.Token, onStarted: (sys, coord) => started.TrySetResult((sys, coord)));
        var (runSystem, _) = await started.Task.WaitAsync(TimeSpan.FromMinutes(2));
        var address = ControlAddressFile.Read(dir);
        var token = ControlEndpoint.ReadToken(Path.Combine(dir, "control.token"));

        // Warnings and errors of the network-facing system: every dropped message must leave a line.
        ActorRegistry.For(runSystem).TryGet<ControlActor>(out var controlRef).Should().BeTrue();
        var controlSystem = ((ActorRefWithCell)controlRef).Underlying.System;
        var warnings = new List<string>();
        var logSink = controlSystem.ActorOf(Props.Create(() => new LogSink(warnings)));
        controlSystem.EventStream.Subscribe(logSink, typeof(Warning));
        controlSystem.EventStream.Subscribe(logSink, typeof(Error));

        await using var client = ControlClient.Create(address, token, TimeSpan.FromSeconds(15));
        try
        {
            // Bring the run to a standstill (paused, in tuning) so that "nothing changed" can be judged exactly.
            RunCommandReply st;
            var waited = 0;
            while ((st = await client.SendAsync(new GetStatus("st"))).Status!.Phase != Phases.Tuning || st.Status.Step < 15)
            {
                (waited += 50).Should().BeLessThan(120_000, "the run reaches tuning");
                await Task.Delay(50);
            }
            (await client.SendAsync(new PauseRun("pause-1"))).Accepted.Should().BeTrue();
            await Task.Delay(1000); // the step in flight, its statistics line, a checkpoint commit in flight
            var before = await client.SendAsync(new GetStatus("st-before"));
            before.Status!.Paused.Should().BeTrue();
            var journalBefore = JournalBytes(dir);
            var filesBefore = FileHashes(parent);

            // Every actor of the run and of the control endpoint, found by walking the trees.
            var paths = (await ActorPaths(runSystem)).Concat(await ActorPaths(controlSystem))
                .Append("/user/run/checkpointer").Append("/user/run/trainer-1").Append("/user/control")
                .Distinct().ToList();
            paths.Should().Contain(["/user/run", "/user/run/checkpointer", "/user/control"]);

            var attacker = ActorSystem.Create("attacker", AttackerConfig);
            try
            {
                var messages = AttackMessages(token).ToList();
                var sendable = messages.Where(m => Serializable((ExtendedActorSystem)attacker, m)).ToList();
                sendable.Select(m => m.GetType().Name).Should().Contain(
                    ["DeleteCheckpoints", "ApplyConfig", "ApplyStage", "PauseTraining", "StopTraining", "ConfigApplied",
                     "PauseRun", "ResumeRun", "StopRun", "SetConfigValue", "SetStage", "ControlRequest", "ConfigChanged"],
                    "the attack reaches the wire with each dangerous message type (else it proves nothing)");
                var root = $"{address.Protocol}://{address.System}@{address.Hostname}:{address.Port}";
                var provider = ((ExtendedActorSystem)attacker).Provider;
                foreach (var path in paths)
                {
                    var direct = provider.ResolveActorRef(root + path);
                    var selection = attacker.ActorSelection(root + path);
                    foreach (var m in sendable)
                    {
                        // With the token, a request to /user/control is the legitimate protocol; elsewhere it is an attack.
                        if (path == ControlActor.Path && m is ControlRequest r && r.Token == token) continue;
                        direct.Tell(m, ActorRefs.NoSender);
                        selection.Tell(m, ActorRefs.NoSender);
                    }
                }
                // Last on the same connection: a well-formed request with the token, so everything above has been
                // read off the wire once it is answered.
                var last = await attacker.ActorSelection(root + ControlActor.Path)
                    .Ask<RunCommandReply>(new ControlRequest(token, new GetStatus("attacker-last")), TimeSpan.FromSeconds(30));
                last.Accepted.Should().BeTrue();
            }
            finally { await attacker.Terminate(); }

            // A well-formed request without the right token is refused, whatever the command.
            foreach (var bad in new[] { "", token[..^1] + (token[^1] == '0' ? "1" : "0") })
            {
                await using var rogue = ControlClient.Create(address, bad, TimeSpan.FromSeconds(15), 1);
                foreach (RunCommand c in new RunCommand[] { new ResumeRun("r-rogue"), new StopRun("s-rogue"),
                             new SetConfigValue("c-rogue", "ect.tuning.lr", "0.5"), new SetStage("g-rogue", 7) })
                {
                    var reply = await rogue.SendAsync(c);
                    reply.Accepted.Should().BeFalse($"token '{bad}' is wrong");
                    reply.Message.Should().Be(ControlActor.RefusedMessage);
                }
            }

            await Task.Delay(2000); // messages handed to actors on other threads (checkpointer, trainer)
            File.Exists(victim).Should().BeTrue("a file outside the run directory is out of any message's reach");
            File.ReadAllText(victim).Should().Be("must survive");
            JournalBytes(dir).Should().Equal(journalBefore, "no event was journaled");
            FileHashes(parent).Should().Equal(filesBefore, "no file was written or deleted");
            var after = await client.SendAsync(new GetStatus("st-after"));
            after.Status.Should().Be(before.Status, "the run's state is unchanged (still paused, same step, same stage)");
            lock (warnings)
                warnings.Should().Contain(w => w.Contains("Refused a control command"), "wrong tokens are logged")
                    .And.Contain(w => w.Contains("dropped", StringComparison.OrdinalIgnoreCase)
                                      || w.Contains("serializer", StringComparison.OrdinalIgnoreCase),
                        "dropped messages are logged");
        }
        finally
        {
            try { await client.SendAsync(new StopRun("stop-1")); } catch (ControlException) { guard.Cancel(); }
        }
        (await run).ExitCode.Should().Be(0);
        var journal = RunJournal.Read(dir);
        RunJournal.Events<ConfigChanged>(journal).Should().BeEmpty();
        RunJournal.Events<StageAdvanced>(journal).Should().NotContain(e => e.ByUser);
        RunJournal.Events<RunResumed>(journal).Should().BeEmpty();
        File.Exists(victim).Should().BeTrue();
        Directory.Delete(parent, true);
    }

    private static List<string> JournalBytes(string dir) =>
        RunJournal.Read(dir).Select(e => $"{e.SequenceNr}:{e.Manifest}:{Convert.ToHexString(e.Event.ToByteArray())}").ToList();

    /// <summary>Every file under <paramref name="root"/> with its SHA-256, except the journal's own files (compared by event).</summary>
    private static List<string> FileHashes(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Where(f => !Path.GetFileName(f).StartsWith("journal.db", StringComparison.Ordinal))
            .OrderBy(f => f, StringComparer.Ordinal)
            .Select(f => Path.GetFileName(f) == "run.lock" // held exclusively by the daemon: its presence is what counts
                ? Path.GetRelativePath(root, f)
                : $"{Path.GetRelativePath(root, f)}:{Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))}")
            .ToList();

    /// <summary>The paths of the live actors under /user and /system (depth 4), by Identify, a level at a time.</summary>
    private static async Task<List<string>> ActorPaths(ActorSystem system)
    {
        var found = new List<string>();
        var level = new List<string> { "/user", "/system" };
        for (int depth = 0; depth < 4 && level.Count > 0; depth++)
        {
            var probe = system.ActorOf(Props.Create(() => new IdentityCollector()));
            foreach (var p in level) system.ActorSelection(p + "/*").Tell(new Identify(p), probe);
            await Task.Delay(500);
            var refs = await probe.Ask<List<IActorRef>>("done", TimeSpan.FromSeconds(10));
            system.Stop(probe);
            level = refs.Select(r => r.Path.ToStringWithoutAddress()).Distinct().ToList();
            found.AddRange(level);
        }
        return found;
    }

    private sealed class IdentityCollector : ReceiveActor
    {
        public IdentityCollector()
        {
            var refs = new List<IActorRef>();
            Receive<ActorIdentity>(i => { if (i.Subject is { } r) refs.Add(r); });
            Receive<string>(_ => Sender.Tell(refs.ToList()));
        }
    }

    private sealed class LogSink : ReceiveActor
    {
        public LogSink(List<string> lines) => Receive<LogEvent>(e => { lock (lines) lines.Add($"{e.LogSource}: {e.Message}"); });
    }

    private static bool Serializable(ExtendedActorSystem system, object message)
    {
        try
        {
            Akka.Serialization.Serialization.WithTransport(system, () => system.Serialization.FindSerializerFor(message).ToBinary(message));
            return true;
        }
        catch (Exception) { return false; }
    }

    /// <summary>
    /// One hostile instance of each message type of the daemon (records of Ect.Actors.Run and Ect.Actors.Control,
    /// nested ones included, and every protobuf message of the assembly), plus control requests with the token
    /// wrapped around each command and without it.
    /// </summary>
    private static IEnumerable<object> AttackMessages(string token)
    {
        var assembly = typeof(RunCoordinator).Assembly;
        var namespaces = new[] { "Ect.Actors.Run", "Ect.Actors.Control", "Ect.Actors.Persistence.Events", "Ect.Actors.Control.Proto" };
        var types = assembly.GetTypes()
            .Where(t => namespaces.Contains(t.Namespace) && t is { IsAbstract: false, IsInterface: false, IsGenericTypeDefinition: false })
            .Where(t => !t.IsDefined(typeof(CompilerGeneratedAttribute)) && !typeof(ActorBase).IsAssignableFrom(t))
            .Where(t => typeof(IMessage).IsAssignableFrom(t) || t.GetMethod("<Clone>$") != null)
            .ToList();
        types.Should().Contain([typeof(StopRequested), typeof(CheckpointCommitted)]);
        types.Select(t => t.Name).Should().Contain(["DeleteCheckpoints", "WriteCheckpoint", "ApplyConfig", "Begin"]);
        foreach (var t in types)
            if (Make(t, "", 0) is { } m) yield return m;
        // The control protocol itself without a valid token, and (sent straight to internal actors) with it.
        foreach (var c in new RunCommand[] { new PauseRun("a-p"), new ResumeRun("a-r"), new StopRun("a-s"),
                     new SetConfigValue("a-c", "ect.tuning.lr", "1e308"), new SetStage("a-g", int.MaxValue), new RequestCheckpoint("a-k") })
        {
            yield return new ControlRequest("", c);
            yield return new ControlRequest("not-the-token", c);
            yield return new ControlRequest(token, c); // with the token, but addressed to internal actors (not sent to /user/control)
        }
    }

    private static object? Make(Type t, string name, int depth)
    {
        if (depth > 4) return null;
        // Not message parts but the plumbing of a record (CoordinatorSetup): nothing a peer could put on the wire.
        if (typeof(Delegate).IsAssignableFrom(t) || t == typeof(Config) || t == typeof(Type)
            || (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(TaskCompletionSource<>)))
            return null;
        if (t == typeof(string))
            return name switch
            {
                "Key" => "ect.tuning.lr",
                "Value" => "1e308",
                "Phase" => Phases.Tuning,
                "IdempotencyKey" or "CommandKey" => "attack-" + Guid.NewGuid().ToString("N"),
                _ => "../victim.txt",
            };
        if (t == typeof(int)) return name == "Generation" ? 1 : 7;
        if (t == typeof(long)) return 5L;
        if (t == typeof(double)) return 0.5;
        if (t == typeof(bool)) return true;
        if (t == typeof(DateTimeOffset)) return DateTimeOffset.UtcNow;
        if (t.IsEnum) return Enum.GetValues(t).GetValue(0);
        if (t == typeof(RunCommand)) return new StopRun("attack-stop");
        if (typeof(IMessage).IsAssignableFrom(t))
        {
            var m = Activator.CreateInstance(t)!;
            foreach (var p in t.GetProperties().Where(p => p.CanWrite))
                if (p.PropertyType == typeof(string)) p.SetValue(m, Make(typeof(string), p.Name, depth + 1));
                else if (p.PropertyType == typeof(long)) p.SetValue(m, 5L);
                else if (p.PropertyType == typeof(int)) p.SetValue(m, 7);
                else if (p.PropertyType == typeof(bool)) p.SetValue(m, true);
            return m;
        }
        if (t.IsGenericType && t.FullName!.StartsWith("System.ValueTuple", StringComparison.Ordinal))
            return Activator.CreateInstance(t, t.GetGenericArguments().Select(a => Make(a, "", depth + 1)).ToArray());
        if (t.IsGenericType && t.GetGenericArguments().Length == 2 && typeof(IEnumerable).IsAssignableFrom(t))
        {
            var args = t.GetGenericArguments();
            var dict = (IDictionary)Activator.CreateInstance(typeof(Dictionary<,>).MakeGenericType(args))!;
            if (Make(args[0], "Key", depth + 1) is { } k) dict[k] = Make(args[1], "Value", depth + 1);
            return dict;
        }
        if (t.IsGenericType && typeof(IEnumerable).IsAssignableFrom(t))
        {
            var arg = t.GetGenericArguments()[0];
            var list = (IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(arg))!;
            if (Make(arg, "", depth + 1) is { } e) list.Add(e);
            return list;
        }
        if (t.IsInterface || t.IsAbstract) return null;
        var ctor = t.GetConstructors(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance)
            .Where(c => !c.GetParameters().Any(p => p.ParameterType == t))
            .OrderByDescending(c => c.GetParameters().Length).FirstOrDefault();
        if (ctor is null) return null;
        try { return ctor.Invoke(ctor.GetParameters().Select(p => Make(p.ParameterType, p.Name ?? "", depth + 1)).ToArray()); }
        catch (Exception) { return null; }
    }
}
