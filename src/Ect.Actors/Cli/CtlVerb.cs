using System.CommandLine;
using System.Globalization;
using Ect.Actors.Control;
using Ect.Actors.Daemon;
using Spectre.Console;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect ctl status|pause|resume|checkpoint|eval|stage N|set KEY=VALUE|stop (--run-dir DIR | --address HOST:PORT --token-file F)`:
/// sends one command to a running daemon's control endpoint and prints the reply. Exit code 0 when the command
/// was accepted, 1 when refused, 2 when the daemon could not be reached (or has exited: no live RUN_DIR/run.lock) or the
/// arguments were wrong.
/// </summary>
public sealed class CtlVerb : ICliVerb
{
    public int Order => 30;

    public const int ExitRefused = 1;
    public const int ExitUnreachable = 2;

    /// <summary>Wrong arguments (e.g. `stage 99999999999`, not an int) exit 2 as the help says, never 1 (= refused by the run).</summary>
    public int UsageErrorExitCode => ExitUnreachable;

    private sealed record Common(
        Option<string?> RunDir, Option<string?> Address, Option<string?> TokenFile, Option<string> System,
        Option<double> Timeout, Option<int> Attempts,
        Option<string?> TlsCertificate, Option<string?> TlsPassword, Option<string[]> TlsPin,
        Option<string?> Run, Option<string?> Cluster, Option<bool> InsecureNoTls);

    public Command Build()
    {
        var ctl = new Command("ctl", "Control a running training daemon (status, pause, resume, checkpoint, eval, stage, set, stop). " +
            "With --run-dir, a run whose daemon has exited is reported at once (exit 2) with the command that continues it.");
        ctl.Subcommands.Add(Simple("status", "Show the run's status.", key => new GetStatus(key)));
        ctl.Subcommands.Add(Simple("pause", "Pause training after the current step; answers with the last step done (\"paused after step N\").", key => new PauseRun(key)));
        ctl.Subcommands.Add(Simple("resume", "Resume a paused run.", key => new ResumeRun(key)));
        ctl.Subcommands.Add(Simple("checkpoint", "Write a checkpoint now.", key => new RequestCheckpoint(key)));
        ctl.Subcommands.Add(Simple("eval", "Run the evaluation now.", key => new RequestEvaluation(key)));
        ctl.Subcommands.Add(Simple("stop", "Checkpoint and stop the daemon.", key => new StopRun(key)));

        var stageArg = new Argument<int>("N") { Description = "The ECT stage to jump to." };
        var stage = new Command("stage", "Move the run to ECT stage N.");
        stage.Arguments.Add(stageArg);
        var stageCommon = AddCommon(stage);
        stage.SetAction((r, ct) => RunAsync(r, stageCommon, key => new SetStage(key, r.GetValue(stageArg)), ct));
        ctl.Subcommands.Add(stage);

        var kvArg = new Argument<string>("KEY=VALUE") { Description = "A configuration key (a live key of `ect config show`, e.g. ect.tuning.lr) and its new value." };
        var set = new Command("set", "Change a run-time configuration value.");
        set.Arguments.Add(kvArg);
        var setCommon = AddCommon(set);
        set.SetAction((r, ct) =>
        {
            var kv = r.GetValue(kvArg) ?? "";
            var eq = kv.IndexOf('=');
            if (eq <= 0)
            {
                Console.Error.WriteLine($"ect ctl set: '{kv}' is not KEY=VALUE (e.g. `ect ctl set ect.tuning.lr=1e-4 --run-dir runs/x`).");
                return Task.FromResult(ExitUnreachable);
            }
            return RunAsync(r, setCommon, key => new SetConfigValue(key, kv[..eq].Trim(), kv[(eq + 1)..].Trim()), ct);
        });
        ctl.Subcommands.Add(set);
        return ctl;
    }

    private static Command Simple(string name, string description, Func<string, RunCommand> make)
    {
        var c = new Command(name, description);
        var common = AddCommon(c);
        c.SetAction((r, ct) => RunAsync(r, common, make, ct));
        return c;
    }

    private static Common AddCommon(Command c)
    {
        var common = new Common(
            new Option<string?>("--run-dir") { Description = "The daemon's run directory (reads control.json and the token file there)." },
            new Option<string?>("--address") { Description = "HOST:PORT of the control endpoint (instead of --run-dir)." },
            new Option<string?>("--token-file") { Description = "The control token file (with --address; default RUN_DIR/control.token)." },
            new Option<string>("--system") { Description = "The daemon's ActorSystem name (with --address).", DefaultValueFactory = _ => "ect" },
            new Option<double>("--timeout") { Description = "Seconds to wait for each attempt.", DefaultValueFactory = _ => 10 },
            new Option<int>("--attempts") { Description = "Attempts before giving up (all with the same idempotency key).", DefaultValueFactory = _ => 3 },
            new Option<string?>("--tls-certificate", "--cluster-cert") { Description = "Our PKCS#12 (.pfx) client certificate, when the daemon uses TLS; with --cluster, the cluster's (default: the cluster.pfx beside --token-file)." },
            new Option<string?>("--tls-password") { Description = "Password of --tls-certificate." },
            new Option<string[]>("--tls-pin") { Description = "A daemon certificate thumbprint to accept (repeatable).", AllowMultipleArgumentsPerToken = true },
            new Option<string?>("--run") { Description = "A run of a sweep cluster, by id (with --cluster and --token-file RUN_ROOT/cluster.token): reached on whichever node trains it." },
            new Option<string?>("--cluster") { Description = "HOST:PORT[,...] of nodes of the sweep cluster (`ect node`), with --run (TLS with the cluster.pfx beside --token-file, or --tls-certificate)." },
            Cluster.ClusterTls.InsecureSwitch());
        foreach (var o in new Option[] { common.RunDir, common.Address, common.TokenFile, common.System, common.Timeout,
                     common.Attempts, common.TlsCertificate, common.TlsPassword, common.TlsPin, common.Run, common.Cluster, common.InsecureNoTls })
            c.Options.Add(o);
        return common;
    }

    private static async Task<int> RunAsync(ParseResult r, Common o, Func<string, RunCommand> make, CancellationToken ct)
    {
        if (r.GetValue(o.Cluster) is { Length: > 0 } cluster) return await ThroughClusterAsync(r, o, cluster, make(Guid.NewGuid().ToString("N")));
        if (r.GetValue(o.Run) is { Length: > 0 })
        {
            Console.Error.WriteLine("ect ctl: --run names a run of a sweep cluster: give --cluster HOST:PORT and --token-file RUN_ROOT/cluster.token too (or --run-dir DIR for a run on this machine).");
            return ExitUnreachable;
        }
        try
        {
            var (address, token) = Resolve(r.GetValue(o.RunDir), r.GetValue(o.Address), r.GetValue(o.TokenFile), r.GetValue(o.System) ?? "ect");
            ControlClientTls? tls = null;
            if (r.GetValue(o.TlsCertificate) is { Length: > 0 } certPath)
            {
                tls = new ControlClientTls(ControlEndpoint.LoadCertificate(certPath, r.GetValue(o.TlsPassword) ?? ""),
                    r.GetValue(o.TlsPin) ?? []);
                if (address.Protocol == "akka.tcp") address = address with { Protocol = "akka.ssl.tcp" };
            }
            // One key per invocation: every retry below re-sends the same command object.
            var command = make(Guid.NewGuid().ToString("N"));
            await using var client = ControlClient.Create(address, token, TimeSpan.FromSeconds(r.GetValue(o.Timeout)),
                r.GetValue(o.Attempts), tls);
            var reply = await client.SendAsync(command, ct);
            Print(reply);
            if (reply.Accepted && command is SetConfigValue)
                Console.Out.WriteLine($"command id {command.IdempotencyKey} (should this change ruin the run: `ect train --revert-command {command.IdempotencyKey}` on its run directory undoes it)");
            return reply.Accepted ? 0 : ExitRefused;
        }
        catch (ControlException e)
        {
            Console.Error.WriteLine($"ect ctl: {e.Message}");
            return ExitUnreachable;
        }
    }

    /// <summary>
    /// `ect ctl CMD --run RUN --cluster HOST:PORT --token-file RUN_ROOT/cluster.token`: through a node's receptionist to the
    /// run's entity, which hands the command to its trainer's control endpoint on its own node (or answers itself).
    /// </summary>
    private static async Task<int> ThroughClusterAsync(ParseResult r, Common o, string cluster, RunCommand command)
    {
        if (r.GetValue(o.Run) is not { Length: > 0 } run)
        {
            Console.Error.WriteLine("ect ctl: --cluster needs --run RUN (the run id, as `ect sweep status NAME --cluster ...` lists it).");
            return ExitUnreachable;
        }
        var tls = new Cluster.ClusterTls(r.GetValue(o.TlsCertificate), r.GetValue(o.TlsPassword) ?? "", r.GetValue(o.TlsPin) ?? [], r.GetValue(o.InsecureNoTls));
        Cluster.SweepClient client;
        try { client = Cluster.SweepClient.Connect(cluster, tls, r.GetValue(o.TokenFile)); }
        catch (Exception e) when (e is ArgumentException or IOException) { Console.Error.WriteLine($"ect ctl: {e.Message}"); return ExitUnreachable; }
        try
        {
            var reply = await client.Control(run, command, TimeSpan.FromSeconds(Math.Max(1, r.GetValue(o.Timeout)) + 20));
            Print(reply);
            return reply.Accepted ? 0 : ExitRefused;
        }
        catch (TimeoutException e) { Console.Error.WriteLine($"ect ctl: {e.Message}"); return ExitUnreachable; }
        finally { await client.DisposeAsync(); }
    }

    /// <summary>Where to send and with which token: from --run-dir (control.json + token file) or --address/--token-file.</summary>
    public static (ControlAddress Address, string Token) Resolve(string? runDir, string? address, string? tokenFile, string system)
    {
        if (address is { Length: > 0 })
        {
            var tokenPath = tokenFile ?? (runDir is null ? null : Path.Combine(runDir, ControlSettings.Default.TokenFile))
                ?? throw new ControlException("--address needs --token-file (the daemon's RUN_DIR/control.token).");
            return (ParseAddress(address, system), ControlEndpoint.ReadToken(tokenPath));
        }
        if (runDir is not { Length: > 0 })
            throw new ControlException("give --run-dir DIR (the daemon's run directory) or --address HOST:PORT --token-file FILE.");
        // A daemon holds RUN_DIR/run.lock for as long as it lives: without a holder, control.json is left over from
        // one that has exited, and asking its old port would only time out.
        if (Directory.Exists(runDir) && File.Exists(ControlAddressFile.PathIn(runDir)) && !RunLock.IsHeld(runDir))
            throw new ControlException(NotRunning(runDir));
        var a = ControlAddressFile.Read(runDir);
        return (a, ControlEndpoint.ReadToken(tokenFile ?? Path.Combine(runDir, ControlSettings.Default.TokenFile)));
    }

    /// <summary>What `ect ctl` says about a run directory whose daemon has exited.</summary>
    public static string NotRunning(string runDir) =>
        $"the run in '{runDir}' is not running: no daemon holds {Path.Combine(runDir, RunLock.FileName)} " +
        $"({ControlAddressFile.FileName} is left from a daemon that has exited). To continue the run from its last checkpoint, " +
        $"start it again: `ect train --run-dir {runDir}` (with the --config it was started with); `ect inspect {runDir}` shows where it stopped.";

    private static ControlAddress ParseAddress(string address, string system)
    {
        var colon = address.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(address[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            throw new ControlException($"--address '{address}' is not HOST:PORT (e.g. 127.0.0.1:40123; the port is in RUN_DIR/control.json).");
        return new ControlAddress("akka.tcp", system, address[..colon].Trim('[', ']'), port, ControlActor.Path);
    }

    private static void Print(RunCommandReply reply)
    {
        // Created per call so that a redirected Console.Out (tests, pipes) is honoured.
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        // Redirected output has no width; digests and paths should not wrap mid-token.
        if (Console.IsOutputRedirected) console.Profile.Width = 240;
        if (!reply.Accepted)
        {
            Console.Error.WriteLine($"ect ctl: refused: {reply.Message}");
            return;
        }
        if (reply.Status is { } s)
        {
            var table = new Table().AddColumn("field").AddColumn("value");
            void Row(string k, string v) => table.AddRow(Markup.Escape(k), Markup.Escape(v));
            Row("run", s.RunId);
            Row("phase", s.Phase);
            Row("step", s.Step.ToString(CultureInfo.InvariantCulture));
            Row("kimg", s.Kimg.ToString("0.###", CultureInfo.InvariantCulture));
            Row("stage", s.Stage.ToString(CultureInfo.InvariantCulture));
            Row("paused", s.Paused ? "yes" : "no");
            Row("last loss", s.LastLoss?.ToString("G6", CultureInfo.InvariantCulture) ?? "-");
            Row("images/s", s.ImagesPerSecond?.ToString("0.#", CultureInfo.InvariantCulture) ?? "-");
            Row("last checkpoint", s.LastCheckpoint ?? "-");
            Row("device", s.Device ?? "-");
            Row("ranks", s.WorldSize == 1 ? "1" : $"{s.WorldSize} (data-parallel, mpirun -np {s.WorldSize})");
            console.Write(table);
        }
        if (!string.IsNullOrEmpty(reply.Message)) console.WriteLine(reply.Message);
    }
}
