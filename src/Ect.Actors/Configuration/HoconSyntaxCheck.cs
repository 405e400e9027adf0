namespace Ect.Actors.Configuration;

/// <summary>
/// A strict check of the brackets of a HOCON text before Akka's parser sees it. Akka.NET's HOCON parser (1.5) stops
/// at a '}' that closes nothing and silently drops every key after it, and accepts a '{' or '[' that is never closed:
/// a configuration file with one brace too many or too few would run with keys the user never sees missing. This pass
/// skips quoted strings ("...", """...""" ), comments (# and //) and substitutions (${...}) and refuses the first
/// bracket that does not match, naming the file, the line and the fix.
/// </summary>
public static class HoconSyntaxCheck
{
    /// <summary>Throws <see cref="ConfigurationException"/> when a bracket of <paramref name="text"/> is unbalanced; <paramref name="origin"/> names the text.</summary>
    public static void Check(string text, string origin)
    {
        var open = new Stack<(char Bracket, int Line)>();
        int line = 1;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\n') { line++; continue; }
            if (c == '#' || (c == '/' && i + 1 < text.Length && text[i + 1] == '/'))
            {
                while (i + 1 < text.Length && text[i + 1] != '\n') i++;
                continue;
            }
            if (c == '"')
            {
                int start = line;
                if (i + 2 < text.Length && text[i + 1] == '"' && text[i + 2] == '"')
                {
                    int end = text.IndexOf("\"\"\"", i + 3, StringComparison.Ordinal);
                    if (end < 0) throw Refuse(origin, start, "a triple-quoted string (\"\"\") is never closed", "close it with \"\"\"");
                    // A triple-quoted string ends at the last of a run of quotes ("""" ends with one quote inside).
                    while (end + 3 < text.Length && text[end + 3] == '"') end++;
                    line += Count(text, i, end + 3, '\n');
                    i = end + 2;
                    continue;
                }
                for (i++; i < text.Length && text[i] != '"'; i++)
                {
                    if (text[i] == '\\') i++;
                    else if (text[i] == '\n')
                        throw Refuse(origin, start, "a quoted string is not closed on its line", "close it with \" (use \"\"\" for a multi-line string)");
                }
                if (i >= text.Length) throw Refuse(origin, start, "a quoted string is never closed", "close it with \"");
                continue;
            }
            if (c == '$' && i + 1 < text.Length && text[i + 1] == '{')
            {
                int end = text.IndexOf('}', i + 2);
                int nl = text.IndexOf('\n', i + 2);
                if (end < 0 || (nl >= 0 && nl < end)) throw Refuse(origin, line, "a substitution ${... is not closed on its line", "close it with }");
                i = end;
                continue;
            }
            if (c is '{' or '[') { open.Push((c, line)); continue; }
            if (c is '}' or ']')
            {
                char expected = c == '}' ? '{' : '[';
                if (open.Count == 0)
                    throw Refuse(origin, line, $"'{c}' closes nothing (one '{c}' too many); the parser would ignore every key after it",
                        $"remove this '{c}' or add the '{expected}' it should close");
                var (b, at) = open.Pop();
                if (b != expected)
                    throw Refuse(origin, line, $"'{c}' here closes the '{b}' opened on line {at}",
                        $"close the '{b}' of line {at} with '{(b == '{' ? '}' : ']')}' first");
            }
        }
        if (open.Count > 0)
        {
            var (b, at) = open.Peek();
            throw Refuse(origin, at, $"'{b}' opened here is never closed (the text ends on line {line})",
                $"add the missing '{(b == '{' ? '}' : ']')}'");
        }
    }

    private static int Count(string s, int from, int to, char c)
    {
        int n = 0;
        for (int i = from; i < to && i < s.Length; i++) if (s[i] == c) n++;
        return n;
    }

    private static ConfigurationException Refuse(string origin, int line, string problem, string fix) =>
        new($"{origin}, line {line}: {problem}. Fix: {fix}.");
}
