using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.TorchScalars;

/// <summary>
/// Guards the fix of TorchSharp 0.107's Scalar race (issue 17, docs/torchsharp-scalar-race.md): no source file of
/// Ect.Compute, Ect.Data or Ect.Actors that uses TorchSharp passes libtorch a Scalar it does not keep alive, and no test
/// does either (a test network's weights built with `randn(...) * 0.3` made the digest tests flaky). Here (not in
/// Ect.Compute.Tests) because this project's output holds every assembly those sources are compiled against.
/// </summary>
public class TorchScalarRulesTests
{
    private static readonly string Root = RepoRoot.Find();
    private static readonly Lazy<HashSet<string>> Leaky = new(() => TorchScalarRules.ReadList(TorchScalarRules.ListPath(Root)));

    /// <summary>src/NAME's sources; for Ect.Actors also its protobuf classes generated under obj/ for this configuration.</summary>
    private static IEnumerable<(string, string)> ProjectSources(string name)
    {
        var dir = Path.Combine(Root, name.EndsWith(".Tests", StringComparison.Ordinal) ? "tests" : "src", name);
        var files = Directory.GetFiles(dir, "*.cs", SearchOption.AllDirectories)
            .Where(f => !IsUnder(f, Path.Combine(dir, "bin")) && !IsUnder(f, Path.Combine(dir, "obj"))).ToList();
        var objConfig = Path.Combine(dir, "obj", Configuration());
        if (Directory.Exists(objConfig))
            files.AddRange(Directory.GetFiles(objConfig, "*.cs", SearchOption.AllDirectories)
                .Where(f => File.ReadLines(f).Take(3).Any(l => l.Contains("protocol buffer compiler", StringComparison.Ordinal))));
        return files.Select(f => (f, File.ReadAllText(f)));
    }

    private static bool IsUnder(string file, string dir) => file.StartsWith(dir + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>"Debug" or "Release": the folder above net10.0 in this test's output path.</summary>
    private static string Configuration()
    {
        var parts = AppContext.BaseDirectory.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        var i = Array.LastIndexOf(parts, "bin");
        return i >= 0 && i + 1 < parts.Length ? parts[i + 1] : "Debug";
    }

    [Theory]
    [InlineData("Ect.Compute")]
    [InlineData("Ect.Data")]
    [InlineData("Ect.Actors")]
    [InlineData("Ect.Compute.Tests")]
    [InlineData("Ect.Data.Tests")]
    [InlineData("Ect.Actors.Tests")]
    [InlineData("Ect.Mpi.Tests")]
    public void No_source_passes_libtorch_a_Scalar_it_does_not_keep_alive(string project)
    {
        var compilation = TorchScalarRules.Compile(ProjectSources(project), [project + ".dll"], project);
        string.Join("\n", TorchScalarRules.BindingErrors(compilation)).Should().BeEmpty("every TorchSharp call must be bound for the rules to see it");
        var findings = TorchScalarRules.Check(compilation, Leaky.Value, p => Path.GetRelativePath(Root, p));
        string.Join("\n", findings).Should().BeEmpty(
            "TorchSharp 0.107 lets the GC free the Scalars it makes itself while libtorch reads them (docs/torchsharp-scalar-race.md)");
    }

    private const string Snippet = """
        using TorchSharp;
        using Ect.Compute;
        using static TorchSharp.torch;
        static class Snippet
        {
            static Tensor F(Tensor x, Tensor y, double v)
            {
        BODY
            }
        }
        """;

    private static List<TorchScalarRules.Finding> CheckSnippet(string body)
    {
        var compilation = TorchScalarRules.Compile([("Snippet.cs", Snippet.Replace("BODY", body))], []);
        compilation.GetDiagnostics().Where(d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error)
            .Select(d => d.ToString()).Should().BeEmpty("the snippet must compile for the check to mean anything");
        return TorchScalarRules.Check(compilation, Leaky.Value);
    }

    [Theory]
    [InlineData("return x * 0.5;", "op_Multiply(Tensor,Double)")]
    [InlineData("return 1 - x;", "op_Subtraction(Int32,Tensor)")]
    [InlineData("return x.mul(0.5);", "implicit conversion")]
    [InlineData("var (a, b) = (x, y);\n        return (b * a.clamp_min(0).sqrt()).exp();", "implicit conversion")]
    [InlineData("return x.clamp(0);", "implicit conversion")]
    [InlineData("return x.pow(2);", "implicit conversion")]
    [InlineData("return x + y;", "op_Addition(Tensor,Tensor)")]
    [InlineData("return x.add(y);", "add(Tensor)")]
    [InlineData("return x.square();", "square()")]
    [InlineData("using var s = v.ToScalar();\n        return x.mul(s) + y;", "op_Addition(Tensor,Tensor)")]
    public void A_call_that_leaves_a_Scalar_to_the_finalizer_is_named_with_its_line(string body, string why)
    {
        var findings = CheckSnippet(body);
        findings.Should().ContainSingle().Which.Why.Should().Contain(why);
        findings[0].File.Should().Be("Snippet.cs");
        var expectedLine = Snippet.Split('\n').ToList().FindIndex(l => l.Contains("BODY")) + 1 + body.Split('\n').Length - 1;
        findings[0].Line.Should().Be(expectedLine);
    }

    [Theory]
    [InlineData("return x.mul(ScalarConstants.Half).add(y, ScalarConstants.One);")]
    [InlineData("using var s = v.ToScalar();\n        return x.mul(s).sub(y).pow(ScalarConstants.Two).Plus(y).Times(v);")]
    [InlineData("return x.mul(y).div(y).exp().sqrt().sum();")]
    public void Calls_with_Scalars_we_own_pass(string body) => CheckSnippet(body).Should().BeEmpty();

    [Fact]
    public void Every_listed_method_names_a_public_TorchSharp_method()
    {
        // The list and the rules spell methods the same way (a mismatch would make the list silently match nothing).
        var compilation = TorchScalarRules.Compile([], []);
        var all = TorchScalarRules.AllMethodIds(compilation, "TorchSharp");
        Leaky.Value.Should().NotBeEmpty().And.Contain("TorchSharp.torch+Tensor.add(Tensor)");
        Leaky.Value.Where(m => !all.Contains(m)).Should().BeEmpty();
    }
}
