using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Akka.Configuration;
using Ect.Actors.Configuration;
using Akka.Configuration.Hocon;
using ConfigurationException = Ect.Actors.Configuration.ConfigurationException;

namespace Ect.Actors.Sweeps;

/// <summary>
/// A sweep (issue 19): many tunings of one base configuration, each with its own overlay of `ect` keys, compared on
/// one metric. The SPEC file is HOCON:
/// <code>
/// sweep {
///   name = "recipe-a"                        # [a-z0-9-], 1-40 characters: run ids are NAME-NNN-HASH
///   metric = "fd-resnet18-2step"             # a metric of metrics.jsonl: METRIC-Nstep (N sampling steps)
///   goal = minimize                          # or maximize
///   base = ["fashion-mnist.conf"]            # --config files, relative to the SPEC file (optional)
///   set { ect.tuning.steps = 2000 }          # base overrides (optional)
///   grid { "ect.network.dropout" = [0, 0.1], "ect.tuning.double-ticks" = [1, 2] }   # every combination
///   list = [ { "ect.optimizer.lr" = 1e-4 }, { "ect.optimizer.lr" = 2e-4 } ]          # and/or explicit overlays
///   compute-key = "ect.tuning.steps"         # the overlay key that is the compute axis of the power law (optional)
///   compute-scaled = ["ect.tuning.double-ticks"]   # keys scaled with it along that axis (optional; see SweepResults.ComputeAxis)
/// }
/// </code>
/// With both a grid and a list, every list overlay is combined with every grid point. Every key of every overlay is
/// checked against default.conf (an unknown key is refused naming the SPEC file and the key), and every run's whole
/// configuration is resolved here, so a bad value is refused before anything is submitted.
/// </summary>
public sealed partial record SweepSpec(
    string Name, string SpecPath, string Metric, int MetricSteps, bool Minimize,
    IReadOnlyList<string> BaseFiles, IReadOnlyList<string> BaseSets, IReadOnlyList<SweepRun> Runs, string? ComputeKey,
    IReadOnlyList<string> ComputeScaled)
{
    /// <summary>More runs than this in one sweep is refused (a grid typo such as a 1000-value list is caught early).</summary>
    public const int MaxRuns = 10_000;

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,39}$")] private static partial Regex NamePattern();
    [GeneratedRegex(@"^(?<m>[a-z0-9-]+?)-(?<n>\d+)step$")] private static partial Regex MetricPattern();

    /// <summary>Reads and checks <paramref name="specPath"/>; throws <see cref="ConfigurationException"/> naming the file and the problem.</summary>
    public static SweepSpec Load(string specPath)
    {
        var full = Path.GetFullPath(specPath);
        if (!File.Exists(full)) throw new ConfigurationException($"sweep spec {specPath}: file not found.");
        var text = File.ReadAllText(full);
        HoconSyntaxCheck.Check(text, $"sweep spec {full}");
        Config root;
        try { root = ConfigurationFactory.ParseString(text); }
        catch (Exception e) { throw new ConfigurationException($"sweep spec {full}: not valid HOCON ({e.Message})."); }
        string Where(string key) => $"sweep spec {full}: {key}";
        if (!root.HasPath("sweep")) throw new ConfigurationException($"sweep spec {full}: no `sweep {{ ... }}` section.");
        var known = new HashSet<string> { "name", "metric", "goal", "base", "set", "grid", "list", "compute-key", "compute-scaled" };
        foreach (var (key, _) in root.GetConfig("sweep").Root.GetObject().Items)
            if (!known.Contains(key)) throw new ConfigurationException($"{Where("sweep." + key)}: unknown key (known: {string.Join(", ", known.Order())}).");
        foreach (var (key, _) in root.Root.GetObject().Items)
            if (key != "sweep") throw new ConfigurationException($"{Where(key)}: unknown top-level key (only `sweep` is read).");
        var s = root.GetConfig("sweep");

        var name = s.GetString("name", "");
        if (!NamePattern().IsMatch(name))
            throw new ConfigurationException($"{Where("sweep.name")} = \"{name}\": use 1-40 characters of a-z, 0-9 and '-', starting with a letter or digit.");
        var metric = s.GetString("metric", "");
        var m = MetricPattern().Match(metric);
        if (!m.Success)
            throw new ConfigurationException($"{Where("sweep.metric")} = \"{metric}\": expected METRIC-Nstep as in metrics.jsonl, e.g. \"fd-resnet18-2step\".");
        var goal = s.GetString("goal", "minimize");
        if (goal is not ("minimize" or "maximize"))
            throw new ConfigurationException($"{Where("sweep.goal")} = \"{goal}\": minimize or maximize.");

        var dir = Path.GetDirectoryName(full)!;
        var baseFiles = new List<string>();
        if (s.HasPath("base"))
        {
            var value = s.GetValue("base");
            var items = value.IsArray() ? value.GetArray().Select(v => v.GetString()) : [value.GetString()];
            foreach (var f in items)
            {
                var p = Path.GetFullPath(Path.Combine(dir, f));
                if (!File.Exists(p)) throw new ConfigurationException($"{Where("sweep.base")}: \"{f}\" not found (looked for {p}).");
                baseFiles.Add(p);
            }
        }
        var baseSets = s.HasPath("set") ? Assignments(s.GetValue("set"), Where("sweep.set")) : [];

        var gridAxes = new List<(string Key, List<string> Values)>();
        if (s.HasPath("grid"))
        {
            foreach (var (key, v) in Leaves(s.GetValue("grid")))
            {
                // Akka's HOCON reads an empty list as neither an array nor a value (it inlines as null).
                var inline = EctConfiguration.Inline(v);
                var values = v.IsArray() ? v.GetArray().Select(EctConfiguration.Inline).ToList() : inline is "null" or "[]" ? [] : [inline];
                if (values.Count == 0) throw new ConfigurationException($"{Where("sweep.grid." + key)}: an empty list or null (give at least one value).");
                if (values.Distinct().Count() != values.Count) throw new ConfigurationException($"{Where("sweep.grid." + key)}: a value is repeated ({string.Join(", ", values)}).");
                gridAxes.Add((Normalize(key), values));
            }
            if (gridAxes.Count == 0) throw new ConfigurationException($"{Where("sweep.grid")}: empty (give at least one key with values, or remove it).");
        }
        var listed = new List<List<(string Key, string Value)>>();
        if (s.HasPath("list"))
        {
            var items = s.GetValue("list");
            if (!items.IsArray()) throw new ConfigurationException($"{Where("sweep.list")}: expected a list of objects [{{ KEY = VALUE }}, ...].");
            int i = 0;
            foreach (var item in items.GetArray())
            {
                if (!item.IsObject()) throw new ConfigurationException($"{Where($"sweep.list[{i}]")}: expected an object {{ KEY = VALUE, ... }}.");
                listed.Add(Leaves(item).Select(kv => (Normalize(kv.Key), EctConfiguration.Inline(kv.Value))).ToList());
                i++;
            }
            if (listed.Count == 0) throw new ConfigurationException($"{Where("sweep.list")}: empty (give at least one overlay, or remove it).");
        }
        if (gridAxes.Count == 0 && listed.Count == 0)
            throw new ConfigurationException($"sweep spec {full}: neither `grid` nor `list`: a sweep needs at least one run overlay.");

        long count = Math.Max(1, listed.Count) * gridAxes.Aggregate(1L, (n, a) => checked(n * a.Values.Count));
        if (count > MaxRuns) throw new ConfigurationException($"sweep spec {full}: {count} runs (more than {MaxRuns}): narrow the grid.");

        var overlays = new List<List<(string Key, string Value)>>();
        foreach (var l in listed.Count == 0 ? [[]] : listed)
            foreach (var point in Product(gridAxes))
                overlays.Add([.. l, .. point]);

        var computeKey = s.HasPath("compute-key") ? Normalize(s.GetString("compute-key")) : null;
        var computeScaled = new List<string>();
        if (s.HasPath("compute-scaled"))
        {
            if (computeKey is null) throw new ConfigurationException($"{Where("sweep.compute-scaled")}: needs sweep.compute-key (the key they are scaled with).");
            var v = s.GetValue("compute-scaled");
            foreach (var k in v.IsArray() ? v.GetArray().Select(x => x.GetString()) : [v.GetString()])
            {
                var key = Normalize(k);
                if (key == computeKey) throw new ConfigurationException($"{Where("sweep.compute-scaled")}: {key} is the compute key itself.");
                if (!EctConfiguration.LoadFiles(baseFiles, baseSets).HasPath(key))
                    throw new ConfigurationException($"{Where("sweep.compute-scaled")}: {key} is not a configuration key (see hocon/default.conf).");
                computeScaled.Add(key);
            }
        }
        var runs = new List<SweepRun>();
        var seen = new Dictionary<string, int>();
        for (int i = 0; i < overlays.Count; i++)
        {
            var overlay = overlays[i];
            var dup = overlay.GroupBy(kv => kv.Key).FirstOrDefault(g => g.Count() > 1);
            if (dup is not null)
                throw new ConfigurationException($"sweep spec {full}: run {i} sets {dup.Key} twice (in `list` and in `grid`): set each key in one place.");
            var sets = baseSets.Concat(overlay.Select(kv => $"{kv.Key}={kv.Value}")).ToList();
            try { RunSettings.From(EctConfiguration.LoadFiles(baseFiles, sets), checkData: false); }
            catch (ConfigurationException e) { throw new ConfigurationException($"sweep spec {full}, run {i} ({Describe(overlay)}): {e.Message}"); }
            var hash = Hash(overlay);
            if (seen.TryGetValue(hash, out var j))
                throw new ConfigurationException($"sweep spec {full}: runs {j} and {i} have the same overlay ({Describe(overlay)}).");
            seen[hash] = i;
            if (computeKey is not null && !overlay.Any(kv => kv.Key == computeKey) && !baseSets.Any(b => b.StartsWith(computeKey + "=", StringComparison.Ordinal)))
            { /* the compute axis then comes from the base configuration: every run shares it */ }
            runs.Add(new SweepRun($"{name}-{i:D3}-{hash[..6]}", i, overlay.Select(kv => new KeyValuePair<string, string>(kv.Key, kv.Value)).ToList()));
        }
        return new SweepSpec(name, full, metric, int.Parse(m.Groups["n"].Value, CultureInfo.InvariantCulture), goal == "minimize",
            baseFiles, baseSets, runs, computeKey, computeScaled);
    }

    /// <summary>The `--set` arguments of one run: the base overrides, then its overlay.</summary>
    public IReadOnlyList<string> SetsOf(SweepRun run) => [.. BaseSets, .. run.Overlay.Select(kv => $"{kv.Key}={kv.Value}")];

    /// <summary>The resolved configuration of one run (default.conf &lt; base files &lt; base set &lt; overlay).</summary>
    public Config ConfigOf(SweepRun run) => EctConfiguration.LoadFiles(BaseFiles, SetsOf(run));

    private static string Normalize(string key) => key.StartsWith("ect.", StringComparison.Ordinal) ? key : "ect." + key;

    /// <summary>
    /// The leaves of a HOCON object with their dotted keys, walked directly: a quoted key such as "ect.network.dropout"
    /// is one name holding dots, which a path lookup (Config.GetValue) would split.
    /// </summary>
    private static IEnumerable<(string Key, HoconValue Value)> Leaves(HoconValue v, string prefix = "")
    {
        if (!v.IsObject()) { if (prefix.Length > 0) yield return (prefix, v); yield break; }
        foreach (var (name, child) in v.GetObject().Items)
            foreach (var leaf in Leaves(child, prefix.Length == 0 ? name : prefix + "." + name))
                yield return leaf;
    }

    private static List<string> Assignments(HoconValue set, string where)
    {
        var result = new List<string>();
        foreach (var (key, value) in Leaves(set)) result.Add($"{Normalize(key)}={EctConfiguration.Inline(value)}");
        if (result.Count == 0) throw new ConfigurationException($"{where}: empty.");
        return result;
    }

    private static IEnumerable<List<(string, string)>> Product(List<(string Key, List<string> Values)> axes)
    {
        IEnumerable<List<(string, string)>> acc = [[]];
        foreach (var (key, values) in axes)
            acc = acc.SelectMany(prefix => values.Select(v => new List<(string, string)>([.. prefix, (key, v)])));
        return acc;
    }

    private static string Describe(List<(string Key, string Value)> overlay) =>
        overlay.Count == 0 ? "no overlay" : string.Join(", ", overlay.Select(kv => $"{kv.Key}={kv.Value}"));

    /// <summary>A stable id of an overlay: SHA-256 of its sorted KEY=VALUE lines (independent of the order in the file).</summary>
    private static string Hash(List<(string Key, string Value)> overlay)
    {
        var text = string.Join("\n", overlay.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }
}

/// <summary>One run of a sweep: its id (NAME-NNN-HASH), its index in the expansion and its overlay of `ect` keys.</summary>
public sealed record SweepRun(string Id, int Index, IReadOnlyList<KeyValuePair<string, string>> Overlay);
