using Ect.Actors.Tests.TorchScalars;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.TorchDevices;

/// <summary>
/// Issue 18 point 2 at the source level: no tensor factory call of Ect.Compute, Ect.Data or Ect.Actors leaves out the
/// device and nothing names torch.CPU, except the places tensor-device-allow-list.txt names with a reason. The rule is
/// also run on planted snippets so a rule that finds nothing cannot pass for one that works.
/// </summary>
public class TensorDeviceRulesTests
{
    private static readonly string Root = RepoRoot.Find();
    private static readonly Lazy<List<TensorDeviceRules.AllowEntry>> Allow = new(() => TensorDeviceRules.ReadAllowList(TensorDeviceRules.ListPath(Root)));

    private static IEnumerable<(string, string)> Sources(string project)
    {
        var dir = Path.Combine(Root, "src", project);
        return Directory.GetFiles(dir, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"))
            .Select(f => (f, File.ReadAllText(f)));
    }

    private static List<TorchScalarRules.Finding> CheckProject(string project, IReadOnlyList<TensorDeviceRules.AllowEntry> allow) =>
        TensorDeviceRules.Check(TorchScalarRules.Compile(Sources(project), [project + ".dll"]), allow, p => Path.GetRelativePath(Root, p));

    [Theory]
    [InlineData("Ect.Compute")]
    [InlineData("Ect.Data")]
    [InlineData("Ect.Actors")]
    public void Every_tensor_factory_call_passes_a_device(string project) =>
        string.Join("\n", CheckProject(project, Allow.Value)).Should().BeEmpty(
            "a tensor made without a device lands on the CPU whatever ect.run.device says (issue 18)");

    [Fact]
    public void Every_allow_list_entry_still_excuses_a_call()
    {
        // A stale entry would silently excuse a future call in the same member.
        var raw = new[] { "Ect.Compute", "Ect.Data", "Ect.Actors" }.SelectMany(p => CheckProject(p, [])).ToList();
        var stale = Allow.Value.Where(a => !raw.Any(f => f.File == a.File &&
            (a.Member == "*" || f.Why.Contains($"'{a.File} | {a.Member} |", StringComparison.Ordinal)))).ToList();
        stale.Should().BeEmpty();
        raw.Should().NotBeEmpty("the sources do make host tensors (data staging, file I/O): the rule must see them");
    }

    [Fact]
    public void The_factories_come_from_TorchSharps_API()
    {
        var factories = TensorDeviceRules.Factories(TorchScalarRules.Compile([], []));
        factories.Should().Contain(["tensor", "zeros", "ones", "empty", "full", "arange", "linspace", "randn", "rand", "randint", "randperm", "eye", "from_array"]);
        factories.Should().NotContain(["zeros_like", "randn_like", "empty_like", "cat", "stack"]);
    }

    private const string Snippet = """
        using TorchSharp;
        using static TorchSharp.torch;
        static class Snippet
        {
            static Tensor F(Tensor x)
            {
        BODY
            }
        }
        """;

    private static List<TorchScalarRules.Finding> CheckSnippet(string body, IReadOnlyList<TensorDeviceRules.AllowEntry>? allow = null)
    {
        var compilation = TorchScalarRules.Compile([("Snippet.cs", Snippet.Replace("BODY", body))], []);
        compilation.GetDiagnostics().Where(d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error)
            .Select(d => d.ToString()).Should().BeEmpty("the snippet must compile for the check to mean anything");
        return TensorDeviceRules.Check(compilation, allow ?? []);
    }

    [Theory]
    [InlineData("return zeros(3);", "zeros")]
    [InlineData("return torch.ones(new long[] { 2, 2 }, ScalarType.Float32);", "ones")]
    [InlineData("return randn(4, dtype: ScalarType.Float64);", "randn")]
    [InlineData("return tensor(0.5, dtype: x.dtype, device: null);", "tensor")]
    [InlineData("return arange(0, 10, 1, dtype: ScalarType.Int64);", "arange")]
    [InlineData("return x.to(CPU);", "torch.CPU")]
    [InlineData("return x.to(torch.CPU);", "torch.CPU")]
    public void A_planted_violation_is_found_with_its_line(string body, string why)
    {
        var findings = CheckSnippet(body);
        findings.Should().ContainSingle().Which.Why.Should().Contain(why);
        findings[0].Line.Should().Be(Snippet.Split('\n').ToList().FindIndex(l => l.Contains("BODY")) + 1);
    }

    [Theory]
    [InlineData("return zeros(3, device: x.device);")]
    [InlineData("return tensor(0.5, dtype: x.dtype, device: x.device);")]
    [InlineData("return randn_like(x).add(zeros_like(x));")]
    [InlineData("return cat(new[] { x, x }, 0);")]
    public void Calls_that_pass_or_inherit_a_device_pass(string body) => CheckSnippet(body).Should().BeEmpty();

    [Fact]
    public void An_allow_list_entry_excuses_only_its_member()
    {
        CheckSnippet("return zeros(3);", [new("Snippet.cs", "F", "test")]).Should().BeEmpty();
        CheckSnippet("return zeros(3);", [new("Snippet.cs", "G", "test")]).Should().ContainSingle();
    }
}
