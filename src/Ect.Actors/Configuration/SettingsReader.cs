using Akka.Configuration;

namespace Ect.Actors.Configuration;

/// <summary>
/// Reads typed values from the `ect` configuration for <see cref="RunSettings.From"/> and the section records it
/// builds (NetworkSettings, Edm2Settings, ...). A value that cannot be read or breaks its rule adds one message naming
/// the key, the value and the rule to the shared error list and returns a placeholder, so that one refusal lists
/// every wrong key at once.
/// </summary>
public sealed class SettingsReader(Config config, List<string> errors)
{
    public Config Config { get; } = config;

    /// <summary>A reader whose messages are dropped: for a section that only one network type reads (e.g. ect.edm2 when type is ddpmpp).</summary>
    public SettingsReader Quiet() => new(Config, []);

    public void Refuse(string message) => errors.Add(message);

    public T Get<T>(string key, Func<string, T> read, Func<T, bool> ok, string rule)
    {
        try
        {
            var v = read(key);
            if (!ok(v)) errors.Add($"{key} = {Show(Config, key)}: {rule}");
            return v;
        }
        catch (Exception)
        {
            errors.Add($"{key} = {Show(Config, key)}: not a valid value ({rule})");
            return default!;
        }
    }

    public long Long(string key, Func<long, bool> ok, string rule) => Get(key, x => Config.GetLong(x), ok, rule);
    public int Int(string key, Func<int, bool> ok, string rule) => Get(key, x => Config.GetInt(x), ok, rule);
    public double Double(string key, Func<double, bool> ok, string rule) => Get(key, x => Config.GetDouble(x), ok, rule);
    public string String(string key, Func<string, bool> ok, string rule) => Get(key, x => Config.GetString(x) ?? "", ok, rule);
    public bool Bool(string key) => Get(key, x => Config.GetBoolean(x), _ => true, "on or off");

    public IReadOnlyList<int> IntList(string key, Func<IReadOnlyList<int>, bool> ok, string rule) =>
        Get<IReadOnlyList<int>>(key, x => Config.GetIntList(x).ToList(), ok, rule) ?? [];

    public IReadOnlyList<double> DoubleList(string key, Func<IReadOnlyList<double>, bool> ok, string rule) =>
        Get<IReadOnlyList<double>>(key, x => Config.GetDoubleList(x).ToList(), ok, rule) ?? [];

    /// <summary>The value of <paramref name="key"/> as written in HOCON, for messages.</summary>
    public static string Show(Config c, string key)
    {
        try { var v = c.GetValue(key); return v == null ? "(missing)" : EctConfiguration.Inline(v); }
        catch { return "(unreadable)"; }
    }
}
