using System.Globalization;
using System.Text;
using Akka.Configuration;
using Akka.Configuration.Hocon;

namespace Ect.Actors.Configuration;

/// <summary>A user mistake in the configuration: the message names the key, the value and the fix.</summary>
public sealed class ConfigurationException(string message) : Exception(message);

/// <summary>
/// Loads the run configuration: hocon/default.conf (next to the binary) &lt; --config FILE &lt; --set KEY=VALUE.
/// Keys that the defaults do not know are refused, so a typo cannot silently fall back to a default.
/// </summary>
public static class EctConfiguration
{
    public static string DefaultsPath => Path.Combine(AppContext.BaseDirectory, "hocon", "default.conf");

    public static string DefaultsText()
    {
        var path = DefaultsPath;
        if (!File.Exists(path))
            throw new ConfigurationException($"The default configuration {path} is missing: reinstall ect (it is copied next to ect.dll by the build).");
        return File.ReadAllText(path);
    }

    public static Config Defaults() => ConfigurationFactory.ParseString(DefaultsText());

    /// <summary>Parses a --set argument "KEY=VALUE" into a one-key HOCON config. KEY may omit the "ect." prefix.</summary>
    public static Config ParseSet(string assignment)
    {
        var eq = assignment.IndexOf('=');
        if (eq <= 0)
            throw new ConfigurationException($"--set '{assignment}': expected KEY=VALUE, e.g. --set ect.data.batch-size=64");
        var key = assignment[..eq].Trim();
        var value = assignment[(eq + 1)..].Trim();
        if (!key.StartsWith("ect.", StringComparison.Ordinal)) key = "ect." + key;
        try
        {
            return ConfigurationFactory.ParseString($"{key} = {value}");
        }
        catch (Exception)
        {
            // A value such as a path with ':' is not valid unquoted HOCON: take it as a string.
            try { return ConfigurationFactory.ParseString($"{key} = {QuoteString(value)}"); }
            catch (Exception e) { throw new ConfigurationException($"--set '{assignment}': cannot parse ({e.Message})"); }
        }
    }

    /// <summary>Resolves the layers and refuses unknown keys. Throws ConfigurationException.</summary>
    public static Config Load(string? configFile, IEnumerable<string> sets)
    {
        var defaults = Defaults();
        var layers = new List<(string Origin, Config Config)>();
        if (configFile != null)
        {
            if (!File.Exists(configFile))
                throw new ConfigurationException($"--config {configFile}: file not found.");
            Config file;
            try { file = ConfigurationFactory.ParseString(File.ReadAllText(configFile)); }
            catch (Exception e) { throw new ConfigurationException($"--config {configFile}: not valid HOCON ({e.Message})."); }
            layers.Add(($"--config {configFile}", file));
        }
        foreach (var s in sets) layers.Add(($"--set {s}", ParseSet(s)));

        var known = LeafKeys(defaults).ToHashSet();
        foreach (var (origin, layer) in layers)
            foreach (var key in LeafKeys(layer))
                if (!known.Contains(key) && !IsUnderList(key, known))
                    throw new ConfigurationException(
                        $"{origin}: unknown configuration key '{key}'. `ect config show` lists every key.");

        var result = defaults;
        foreach (var (_, layer) in layers) result = layer.WithFallback(result);
        // Flatten the fallback chain so the result renders and compares as one document.
        return ConfigurationFactory.ParseString(Render(result));
    }

    /// <summary>The leaf keys that --config FILE and the --set assignments give (full "ect." names), without the defaults.</summary>
    public static IReadOnlySet<string> RequestedKeys(string? configFile, IEnumerable<string> sets)
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        if (configFile != null && File.Exists(configFile))
        {
            try { keys.UnionWith(LeafKeys(ConfigurationFactory.ParseString(File.ReadAllText(configFile)))); }
            catch (Exception) { } // Load has refused an unreadable file already
        }
        foreach (var s in sets) keys.UnionWith(LeafKeys(ParseSet(s)));
        return keys;
    }

    /// <summary>A config from the HOCON text stored in a run's journal (layered over the defaults, for keys added later).</summary>
    public static Config FromJournal(string hocon) =>
        ConfigurationFactory.ParseString(hocon).WithFallback(Defaults());

    private static bool IsUnderList(string key, HashSet<string> known) =>
        known.Any(k => key.StartsWith(k + ".", StringComparison.Ordinal));

    public static IEnumerable<string> LeafKeys(Config config)
    {
        var root = config.Root;
        return Walk(root, "");

        static IEnumerable<string> Walk(HoconValue v, string prefix)
        {
            if (v.IsObject())
            {
                foreach (var (name, child) in v.GetObject().Items)
                    foreach (var k in Walk(child, prefix.Length == 0 ? name : prefix + "." + name))
                        yield return k;
            }
            else yield return prefix;
        }
    }

    /// <summary>Renders the `ect` section as HOCON (keys sorted as in the source), values resolved.</summary>
    public static string Render(Config config)
    {
        var sb = new StringBuilder();
        RenderValue(sb, config.GetValue("ect") ?? throw new ConfigurationException("no `ect` section"), 0, "ect");
        return sb.ToString();

        static void RenderValue(StringBuilder sb, HoconValue v, int indent, string name)
        {
            var pad = new string(' ', indent * 2);
            if (v.IsObject())
            {
                sb.Append(pad).Append(name).Append(" {\n");
                foreach (var (k, child) in v.GetObject().Items)
                    RenderValue(sb, child, indent + 1, QuoteKey(k));
                sb.Append(pad).Append("}\n");
            }
            else sb.Append(pad).Append(name).Append(" = ").Append(Inline(v)).Append('\n');
        }
    }

    /// <summary>A value on one line, HOCON/JSON syntax.</summary>
    public static string Inline(HoconValue v)
    {
        if (v.IsObject())
            return "{ " + string.Join(", ", v.GetObject().Items.Select(kv => QuoteKey(kv.Key) + " = " + Inline(kv.Value))) + " }";
        if (v.IsArray())
            return "[" + string.Join(", ", v.GetArray().Select(Inline)) + "]";
        if (v.IsEmpty) return "\"\"";
        var s = v.GetString();
        if (s == null) return "null";
        if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _) || s is "on" or "off" or "true" or "false")
            return s;
        return QuoteString(s);
    }

    private static string QuoteKey(string k) => k.All(c => char.IsLetterOrDigit(c) || c is '-' or '_') ? k : QuoteString(k);

    public static string QuoteString(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    /// <summary>
    /// The defaults file with every value replaced by its resolved value: each key keeps the comment that documents it.
    /// </summary>
    public static string Show(Config resolved)
    {
        var lines = DefaultsText().Split('\n');
        var sb = new StringBuilder();
        var path = new Stack<string>();
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            var t = line.Trim();
            if (t.StartsWith('#') || t.Length == 0) { sb.Append(line).Append('\n'); continue; }
            if (t.EndsWith('{') && !t.Contains('='))
            {
                path.Push(t.TrimEnd('{').Trim());
                sb.Append(line).Append('\n');
                continue;
            }
            if (t == "}") { if (path.Count > 0) path.Pop(); sb.Append(line).Append('\n'); continue; }
            var eq = t.IndexOf('=');
            if (eq > 0)
            {
                var key = t[..eq].Trim();
                var value = t[(eq + 1)..].Trim();
                // A multi-line value (an array of objects): skip its source lines, print the resolved value.
                int depth = Balance(value);
                while (depth > 0 && i + 1 < lines.Length) depth += Balance(lines[++i]);
                var full = string.Join(".", path.Reverse().Append(key));
                var indent = line[..(line.Length - line.TrimStart().Length)];
                var hv = resolved.GetValue(full);
                sb.Append(indent).Append(key).Append(" = ").Append(hv == null ? value : Inline(hv)).Append('\n');
                continue;
            }
            sb.Append(line).Append('\n');
        }
        return sb.ToString().TrimEnd('\n') + "\n";

        static int Balance(string s) => s.Count(c => c is '[' or '{') - s.Count(c => c is ']' or '}');
    }
}
