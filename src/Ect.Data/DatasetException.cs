namespace Ect.Data;

/// <summary>
/// The one error type for bad data input. Its message always says which file (and, inside an archive, which entry)
/// is at fault, what is wrong with it and what the user can do, so the CLI can print it as is and exit non-zero.
/// </summary>
public sealed class DatasetException : Exception
{
    /// <summary>The file or folder at fault.</summary>
    public string FilePath { get; }

    /// <summary>The entry inside an archive, when the fault is in one entry (zip member, tar member), else null.</summary>
    public string? Entry { get; }

    /// <summary>What is wrong, without the location and the fix.</summary>
    public string Problem { get; }

    /// <summary>What to do about it.</summary>
    public string Fix { get; }

    public DatasetException(string filePath, string? entry, string problem, string fix, Exception? inner = null)
        : base(Compose(filePath, entry, problem, fix), inner)
    {
        FilePath = filePath;
        Entry = entry;
        Problem = problem;
        Fix = fix;
    }

    public DatasetException(string filePath, string problem, string fix, Exception? inner = null)
        : this(filePath, null, problem, fix, inner) { }

    private static string Compose(string filePath, string? entry, string problem, string fix)
    {
        var where = entry is null ? filePath : $"{filePath} (entry '{entry}')";
        return $"{where}: {problem}. {fix}";
    }
}
