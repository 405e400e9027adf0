using System.Text;
using System.Text.RegularExpressions;
using Ect.Actors.Configuration;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Cli;

/// <summary>
/// README.md, docs/, hocon/*.conf and the `--help` texts agree with the tool: every documented `ect` command parses,
/// every configuration key they name exists (`ect config show` knows it), and the cheap commands run for real
/// (fake engine for training; <see cref="The_documented_checkpoint_commands_run_on_a_tiny_real_checkpoint"/> trains a
/// tiny real network for inspect, export and eval).
/// </summary>
[Collection("Console")]
public sealed partial class DocumentedCommandsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-docs-").FullName;

    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private static string Repo => RepoRoot.Find();

    /// <summary>A documented command: where it was found and its text after `ect` (or after `dotnet run ... --`).</summary>
    public sealed record Documented(string Source, string Text);

    /// <summary>Commands in README's code lines and inline code spans, and in the help texts' backticked examples.</summary>
    public static List<Documented> Commands()
    {
        var list = new List<Documented>();
        foreach (var line in File.ReadAllLines(Path.Combine(Repo, "README.md")))
        {
            if (line.StartsWith("    ", StringComparison.Ordinal)) Add(list, "README.md", line.Trim());
            foreach (Match m in InlineCode().Matches(line)) Add(list, "README.md", m.Groups[1].Value);
        }
        foreach (var (source, text) in HelpTexts())
            foreach (Match m in InlineCode().Matches(text)) Add(list, source, m.Groups[1].Value);
        return list;

        static void Add(List<Documented> list, string source, string code)
        {
            code = Regex.Replace(code, @"\s+#.*$", "").Trim(); // a trailing shell comment
            if (code.Contains("bench/Ect.Bench", StringComparison.Ordinal) || code.StartsWith("dotnet test", StringComparison.Ordinal)) return;
            var program = code.IndexOf("--project src/Ect.Actors -- ", StringComparison.Ordinal);
            if (program >= 0) code = "ect " + code[(program + "--project src/Ect.Actors -- ".Length)..];
            if (!code.StartsWith("ect ", StringComparison.Ordinal)) return;
            list.Add(new Documented(source, code[4..].Trim()));
        }
    }

    /// <summary>`ect --help` and the help of every verb and sub-verb.</summary>
    public static List<(string Source, string Text)> HelpTexts()
    {
        var result = new List<(string, string)>();
        void Walk(System.CommandLine.Command c, string path)
        {
            var (code, output, err) = CliHarness.Run([.. path.Split(' ', StringSplitOptions.RemoveEmptyEntries), "--help"]);
            code.Should().Be(0, err);
            // Option and argument descriptions, and messages a verb prints, are help too: the help text plus the descriptions.
            var sb = new StringBuilder(output);
            foreach (var o in c.Options) sb.Append('\n').Append(o.Description);
            foreach (var a in c.Arguments) sb.Append('\n').Append(a.Description);
            result.Add(($"ect {path} --help".Replace("  ", " "), sb.ToString()));
            foreach (var sub in c.Subcommands) Walk(sub, path + " " + sub.Name);
        }
        Walk(Program.BuildRoot(), "");
        return result;
    }

    /// <summary>Placeholders of the usage lines, replaced by values of the right kind.</summary>
    private Dictionary<string, string> Placeholders(string runDir, string checkpoint) => new(StringComparer.Ordinal)
    {
        ["FILE"] = Path.Combine(_dir, "fake.conf"), ["KEY=VALUE"] = "ect.tuning.lr=2e-4", ["N"] = "4", ["DIR"] = runDir,
        ["RUN_DIR"] = runDir, ["R"] = runDir, ["CK"] = checkpoint, ["CHECKPOINT"] = checkpoint,
        ["W.safetensors"] = Path.Combine(_dir, "w.safetensors"), ["G.png"] = Path.Combine(_dir, "g.png"),
        ["VERB"] = "config", ["S"] = Path.Combine(_dir, "idx"), ["D.zip"] = Path.Combine(_dir, "d.zip"), ["K"] = "8",
    };

    /// <summary>Shell-like words (double quotes group and are removed), usage brackets and "..." dropped, placeholders replaced.</summary>
    public static string[] Words(string text, IReadOnlyDictionary<string, string> placeholders)
    {
        var words = new List<string>();
        var sb = new StringBuilder();
        bool quoted = false, any = false;
        foreach (var ch in text.Replace("[", " ").Replace("]", " ").Replace("...", " ") + " ")
        {
            if (ch == '"') { quoted = !quoted; any = true; continue; }
            if (char.IsWhiteSpace(ch) && !quoted)
            {
                if (sb.Length > 0 || any) words.Add(sb.ToString());
                sb.Clear();
                any = false;
                continue;
            }
            sb.Append(ch);
        }
        return words.Select(w =>
        {
            if (placeholders.TryGetValue(w, out var v)) return v;
            if (w.Contains('|') && !w.StartsWith('-')) w = w.Split('|')[0]; // alternatives: the first
            if (placeholders.TryGetValue(w, out v)) return v;
            return w.EndsWith('=') ? w + "x" : w; // KEY=... (an elided value)
        }).ToArray();
    }

    private static readonly HashSet<string> Known = EctConfiguration.LeafKeys(EctConfiguration.Defaults()).ToHashSet(StringComparer.Ordinal);

    private static bool IsKey(string key) =>
        Known.Contains(key) || Known.Any(k => key.StartsWith(k + ".", StringComparison.Ordinal)) // under a list (evaluators)
        || Known.Any(k => k.StartsWith(key + ".", StringComparison.Ordinal)); // a section

    /// <summary>The keys of --set KEY=VALUE words and of `ctl set KEY=VALUE`.</summary>
    private static IEnumerable<string> SetKeys(string[] words)
    {
        for (var i = 0; i < words.Length; i++)
        {
            string? kv = null;
            if (words[i] == "--set" && i + 1 < words.Length) kv = words[i + 1];
            else if (words[i].StartsWith("--set=", StringComparison.Ordinal)) kv = words[i]["--set=".Length..];
            else if (i >= 2 && words[i - 2] == "ctl" && words[i - 1] == "set") kv = words[i];
            if (kv is null) continue;
            var key = kv.Split('=')[0];
            yield return key.StartsWith("ect.", StringComparison.Ordinal) ? key : "ect." + key;
        }
    }

    [Fact]
    public void Every_documented_command_parses_and_every_key_it_sets_exists()
    {
        var commands = Commands();
        commands.Select(c => c.Text.Split(' ')[0]).Distinct().Should().Contain(["train", "config", "ctl", "inspect", "runs", "data", "eval", "export", "history"],
            "README shows every verb");
        var placeholders = Placeholders(Path.Combine(_dir, "run"), Path.Combine(_dir, "run", "checkpoints", "ckpt-000000004.ckpt"));
        var problems = new List<string>();
        foreach (var c in commands.SelectMany(Expand))
        {
            var words = Words(c.Text, placeholders);
            var parse = Program.BuildRoot().Parse(words);
            // A bare verb (`ect ctl`, `ect data prepare` in prose) names the verb, it is not an example to run: it must exist.
            var reference = words.All(w => !w.StartsWith('-')) && parse.CommandResult.Command.Name == words[^1];
            if (parse.Errors.Count > 0 && !reference)
                problems.Add($"{c.Source}: `ect {c.Text}` does not parse: {string.Join("; ", parse.Errors.Select(e => e.Message))}");
            foreach (var key in SetKeys(words).Where(k => !IsKey(k)))
                problems.Add($"{c.Source}: `ect {c.Text}` sets '{key}', which is not a configuration key");
        }
        problems.Should().BeEmpty();
    }

    /// <summary>
    /// A usage line whose alternatives are sub-verbs (`ctl status|pause|...|stage N|set KEY=VALUE|stop --run-dir DIR`)
    /// stands for one command per sub-verb, each with its own arguments and the options after the last one.
    /// </summary>
    public static IEnumerable<Documented> Expand(Documented d)
    {
        var words = d.Text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var at = Array.FindIndex(words, w => w.Contains('|'));
        if (at <= 0) return [d];
        System.CommandLine.Command c = Program.BuildRoot();
        foreach (var w in words[..at])
            c = c.Subcommands.FirstOrDefault(s => s.Name == w) ?? c;
        var first = words[at].Split('|')[0];
        if (!c.Subcommands.Any(s => s.Name == first)) return [d];
        var alternatives = string.Join(' ', words[at..]).Split('|').Select(a => a.Trim()).ToList();
        var last = alternatives[^1];
        var options = last.IndexOf(" --", StringComparison.Ordinal);
        var suffix = options >= 0 ? last[options..] : "";
        if (options >= 0) alternatives[^1] = last[..options];
        var prefix = string.Join(' ', words[..at]);
        return alternatives.Select(a => d with { Text = $"{prefix} {a}{suffix}" });
    }

    [GeneratedRegex(@"`([^`]+)`")]
    private static partial Regex InlineCode();

    [GeneratedRegex(@"(?<![\w.-])ect\.([a-z][a-z0-9-]*)(?:\.[a-z0-9][a-z0-9-]*)+")]
    private static partial Regex KeyToken();

    [Fact]
    public void Every_configuration_key_named_in_the_docs_and_the_help_exists()
    {
        var sections = Known.Select(k => k.Split('.')[1]).ToHashSet(StringComparer.Ordinal);
        var texts = new List<(string Source, string Text)>
        {
            ("README.md", File.ReadAllText(Path.Combine(Repo, "README.md"))),
        };
        foreach (var f in Directory.GetFiles(Path.Combine(Repo, "docs"), "*.md").Concat(Directory.GetFiles(Path.Combine(Repo, "hocon"), "*.conf")))
            texts.Add((Path.GetRelativePath(Repo, f), File.ReadAllText(f)));
        texts.AddRange(HelpTexts());
        var problems = new List<string>();
        foreach (var (source, text) in texts)
            foreach (Match m in KeyToken().Matches(text))
                if (sections.Contains(m.Groups[1].Value) && !IsKey(m.Value))
                    problems.Add($"{source}: '{m.Value}' is not a configuration key");
        problems.Distinct().Should().BeEmpty("`ect config show` lists every key");
        texts.Should().Contain(t => t.Source == "ect ctl set --help" && t.Text.Contains("ect.tuning.lr"), "the ctl set example is a live key");
    }

    /// <summary>The documented commands that need no trained network, run for real (fake engine, tiny data).</summary>
    [Fact]
    public void The_cheap_documented_commands_run_for_real()
    {
        var runDir = Path.Combine(_dir, "run");
        File.WriteAllText(Path.Combine(_dir, "fake.conf"), """
            ect.run.engine = fake
            ect.display.mode = off
            ect.control.enabled = off
            ect.tuning.steps = 4
            ect.fake.parameters = 256
            """);
        Eval.TinyCheckpointFixture.WriteIdx(Path.Combine(_dir, "idx"), 12);
        var placeholders = Placeholders(runDir, "");
        var ran = new List<string>();
        var commands = Commands().Where(c => c.Source == "README.md").Select(c => c.Text).Distinct().ToList();
        foreach (var verb in new[] { "config show", "data prepare", "train [", "runs --journal", "history" })
        {
            var text = commands.Where(c => c.StartsWith(verb, StringComparison.Ordinal)).MaxBy(c => c.Length); // the usage line
            text.Should().NotBeNull($"README documents `ect {verb}...`");
            var words = Words(text!, placeholders);
            var (code, output, err) = CliHarness.Run(words);
            code.Should().Be(0, $"`ect {string.Join(' ', words)}` as README shows it: {output}{err}");
            ran.Add(string.Join(' ', words));
        }
        File.Exists(Path.Combine(_dir, "d.zip")).Should().BeTrue("data prepare wrote the zip");
        Directory.GetFiles(Path.Combine(runDir, "checkpoints"), "ckpt-*.ckpt").Should().NotBeEmpty("train ran (fake engine)");
        // The README's --set examples are accepted by `config show` as well.
        foreach (var c in commands.Where(c => c.StartsWith("--set", StringComparison.Ordinal) || c.Contains(" --set ect.")))
        {
            var sets = Words(c, placeholders).SkipWhile(w => w != "--set").ToArray();
            var (code, _, err) = CliHarness.Run(["config", "show", .. sets]);
            code.Should().Be(0, $"`{c}`: {err}");
        }
    }

    /// <summary>inspect, export and eval as README shows them, on a checkpoint of a tiny real run (8 channels, 2 steps).</summary>
    [Fact]
    [Trait("Category", "Slow")] // 26-39 s on 2 busy cores: a real (tiny) training run and three evaluations
    public void The_documented_checkpoint_commands_run_on_a_tiny_real_checkpoint()
    {
        var data = Path.Combine(_dir, "idx");
        Eval.TinyCheckpointFixture.WriteIdx(data, 16);
        var runDir = Path.Combine(_dir, "real");
        var (tc, to, te) = CliHarness.Run("train", "--run-dir", runDir, "--steps", "2", "--set", $"data.path={data}", "--set", "run.threads=1",
            "--set", "network.init=\"\"", "--set", "network.model-channels=8", "--set", "network.channel-mult=[1,2]",
            "--set", "data.batch-size=4", "--set", "display.mode=off", "--set", "control.enabled=off", "--set", "evaluation.evaluators=[]",
            "--set", "checkpoint.every-steps=2");
        tc.Should().Be(0, to + te);
        var checkpoint = Directory.GetFiles(Path.Combine(runDir, "checkpoints"), "ckpt-*.ckpt").Single();
        var placeholders = Placeholders(runDir, checkpoint);
        // Tiny sizes for eval: few images, the tiny dataset as reference, one thread, a private cache.
        string[] tiny = ["--num", "4", "--ref-num", "16", "--batch", "4", "--threads", "1", "--data", data, "--cache-dir", Path.Combine(_dir, "stats")];
        var commands = Commands().Where(c => c.Source == "README.md").Select(c => c.Text).Distinct().ToList();
        foreach (var verb in new[] { "inspect", "export", "eval --checkpoint CK", "eval --teacher" })
        {
            var text = commands.Where(c => c.StartsWith(verb, StringComparison.Ordinal)).MaxBy(c => c.Length); // the usage line
            text.Should().NotBeNull($"README documents `ect {verb}...`");
            var words = Words(text!, placeholders).ToList();
            if (words[0] == "eval")
            {
                var n = words.IndexOf("--num");
                if (n >= 0) words.RemoveRange(n, 2);
                words.AddRange(tiny);
            }
            var (code, output, err) = CliHarness.Run([.. words]);
            code.Should().Be(0, $"`ect {string.Join(' ', words)}` as README shows it: {output}{err}");
            if (words[0] == "inspect") output.Should().Contain(Path.GetFileName(checkpoint));
        }
        File.Exists(Path.Combine(_dir, "w.safetensors")).Should().BeTrue("export wrote the weights file");
        File.Exists(Path.Combine(_dir, "g.png")).Should().BeTrue("eval wrote the --grid PNG");

        // inspect --metadata says which step is which.
        var (mc, mo, _) = CliHarness.Run("inspect", checkpoint, "--metadata");
        mc.Should().Be(0);
        mo.Should().MatchRegex(@"ect\.step[^\n]*current phase").And.MatchRegex(@"user\.step[^\n]*the run's step");
    }
}
