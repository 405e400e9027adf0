using System.Collections;
using System.Reflection;
using Ect.Actors.Run;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// Compares two <see cref="RunState"/>s field by field, over every instance field the class declares (private ones and
/// property backing fields included), so that a field added to RunState but forgotten in its snapshot shows up here
/// without anyone listing it. Collections compare element by element (protobuf messages have value equality).
/// </summary>
internal static class RunStateComparison
{
    /// <summary>Fields that are not run state (none since the count of events since the last snapshot moved to the coordinator).</summary>
    public static readonly string[] NotState = [];

    public static IReadOnlyList<FieldInfo> StateFields { get; } = typeof(RunState)
        .GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
        .Where(f => !NotState.Contains(f.Name))
        .ToList();

    public static string Name(FieldInfo f) =>
        f.Name.StartsWith('<') ? f.Name[1..f.Name.IndexOf('>')] : f.Name;

    /// <summary>The names of the fields whose values differ (empty when the states are equal).</summary>
    public static List<string> Differences(RunState expected, RunState actual) =>
        StateFields.Where(f => !ValueEquals(f.GetValue(expected), f.GetValue(actual)))
            .Select(f => $"{Name(f)}: expected {Show(f.GetValue(expected))}, got {Show(f.GetValue(actual))}")
            .ToList();

    /// <summary>The names of the fields that hold their type's default (or are empty) in <paramref name="state"/>.</summary>
    public static List<string> DefaultFields(RunState state) =>
        StateFields.Where(f => IsDefault(f.GetValue(state))).Select(Name).ToList();

    private static bool IsDefault(object? v) => v switch
    {
        null => true,
        string s => s.Length == 0,
        IEnumerable e => !e.Cast<object?>().Any(),
        _ => v.Equals(Activator.CreateInstance(v.GetType())),
    };

    private static bool ValueEquals(object? a, object? b)
    {
        if (a is null || b is null) return a is null && b is null;
        if (a is string || a is not IEnumerable) return a.Equals(b);
        if (a is IDictionary da && b is IDictionary db)
            return da.Count == db.Count && da.Keys.Cast<object>().All(k => db.Contains(k) && ValueEquals(da[k], db[k]));
        var (ea, eb) = (((IEnumerable)a).Cast<object?>().ToList(), ((IEnumerable)b).Cast<object?>().ToList());
        // Sets have no order; everything else (lists, the command order queue) compares in order.
        if (a.GetType().IsGenericType && a.GetType().GetGenericTypeDefinition() == typeof(HashSet<>))
            return ea.Count == eb.Count && ea.All(x => eb.Contains(x));
        return ea.Count == eb.Count && ea.Zip(eb, ValueEquals).All(same => same);
    }

    private static string Show(object? v) => v switch
    {
        null => "null",
        string s => $"\"{s}\"",
        IDictionary d => $"{d.Count} entries",
        IEnumerable e => $"[{string.Join(", ", e.Cast<object?>().Take(5))}{(e.Cast<object?>().Count() > 5 ? ", ..." : "")}]",
        _ => v.ToString() ?? "",
    };
}
