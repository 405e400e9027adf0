using Ect.Actors.Tests.TorchScalars;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

namespace Ect.Actors.Tests.TorchDevices;

/// <summary>
/// Issue 18's source rule, beside TorchScalarRules (same compilation of our sources against the real TorchSharp): every
/// call of a TorchSharp tensor factory passes a device, and nothing names torch.CPU, unless the allow-list
/// (tensor-device-allow-list.txt) names the place and why. A factory is taken from TorchSharp's own API, not from a
/// hand-written list: a static method of TorchSharp.torch (or a class nested in it) that returns a Tensor and has a
/// Device parameter (zeros, ones, empty, full, tensor, arange, linspace, randn, rand, randint, randperm, from_array, eye,
/// normal, ...), except the *_like ones, whose device defaults to their template's. A call leaves the device out when
/// the compiler filled the parameter with its default (null) or the argument is the literal null.
/// </summary>
public static class TensorDeviceRules
{
    public sealed record AllowEntry(string File, string Member, string Reason);

    public static string ListPath(string repoRoot) =>
        Path.Combine(repoRoot, "tests", "Ect.Actors.Tests", "TorchDevices", "tensor-device-allow-list.txt");

    /// <summary>"path | member | reason" per line ('#' comments); member is the enclosing method, ".ctor", or "*" for the file.</summary>
    public static List<AllowEntry> ReadAllowList(string path) =>
        File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split('|', 3, StringSplitOptions.TrimEntries))
            .Select(p => p.Length == 3 && p[2].Length > 0 ? new AllowEntry(p[0], p[1], p[2])
                : throw new FormatException($"{path}: '{string.Join("|", p)}' is not 'path | member | reason' (the reason is required)."))
            .ToList();

    /// <summary>Is <paramref name="method"/> a TorchSharp tensor factory (see the class summary)?</summary>
    public static bool IsFactory(IMethodSymbol method)
    {
        var m = method.ReducedFrom ?? method;
        if (!m.IsStatic || m.Name.EndsWith("_like", StringComparison.Ordinal)) return false;
        if (!IsInTorch(m.ContainingType)) return false;
        if (m.ReturnType is not INamedTypeSymbol { Name: "Tensor" or "Parameter" } rt || !IsInTorch(rt.ContainingType ?? rt)) return false;
        return m.Parameters.Any(IsDeviceParameter);
    }

    private static bool IsDeviceParameter(IParameterSymbol p) =>
        p.Type is INamedTypeSymbol { Name: "Device" } t && t.ContainingType is { Name: "torch" };

    private static bool IsInTorch(INamedTypeSymbol? t)
    {
        for (; t != null; t = t.ContainingType)
            if (t.Name == "torch" && t.ContainingNamespace?.ToDisplayString() == "TorchSharp") return true;
        return t?.ContainingNamespace?.ToDisplayString().StartsWith("TorchSharp", StringComparison.Ordinal) == true;
    }

    /// <summary>Every factory method of the referenced TorchSharp, as "Name(param types)" (the rule's list, for the record).</summary>
    public static SortedSet<string> Factories(CSharpCompilation compilation)
    {
        var asm = compilation.References.Select(compilation.GetAssemblyOrModuleSymbol).OfType<IAssemblySymbol>().Single(a => a.Name == "TorchSharp");
        var found = new SortedSet<string>(StringComparer.Ordinal);
        var stack = new Stack<INamespaceOrTypeSymbol>([asm.GlobalNamespace]);
        while (stack.TryPop(out var c))
            foreach (var member in c.GetMembers())
                switch (member)
                {
                    case INamespaceOrTypeSymbol nested: stack.Push(nested); break;
                    case IMethodSymbol { DeclaredAccessibility: Accessibility.Public } m when IsFactory(m): found.Add(m.Name); break;
                }
        return found;
    }

    public static List<TorchScalarRules.Finding> Check(CSharpCompilation compilation, IReadOnlyList<AllowEntry> allow, Func<string, string>? displayPath = null)
    {
        var findings = new List<TorchScalarRules.Finding>();
        foreach (var tree in compilation.SyntaxTrees)
        {
            if (!tree.GetText().ToString().Contains("TorchSharp", StringComparison.Ordinal)) continue;
            var model = compilation.GetSemanticModel(tree);
            var file = displayPath?.Invoke(tree.FilePath) ?? tree.FilePath;
            foreach (var node in tree.GetRoot().DescendantNodes())
            {
                string? why = node switch
                {
                    InvocationExpressionSyntax inv when model.GetOperation(inv) is IInvocationOperation op && IsFactory(op.TargetMethod) && !PassesDevice(op)
                        => $"{op.TargetMethod.Name} without a device: pass the configured device (or a tensor's .device)",
                    IdentifierNameSyntax id when id.Identifier.Text == "CPU" && model.GetSymbolInfo(id).Symbol is { Kind: SymbolKind.Field or SymbolKind.Property } s
                                                 && s.ContainingType is { Name: "torch" } && s.ContainingType.ContainingNamespace?.ToDisplayString() == "TorchSharp"
                        => "torch.CPU hard-codes the host: use the configured device",
                    _ => null,
                };
                if (why is null) continue;
                var member = EnclosingMember(node);
                if (allow.Any(a => a.File == file && (a.Member == "*" || a.Member == member))) continue;
                var line = node.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
                findings.Add(new TorchScalarRules.Finding(file, line, Shorten(node.ToString()), why + $" (or allow-list '{file} | {member} | why')"));
            }
        }
        return findings.OrderBy(f => f.File, StringComparer.Ordinal).ThenBy(f => f.Line).ToList();
    }

    private static bool PassesDevice(IInvocationOperation op) =>
        op.Arguments.Any(a => a.Parameter is { } p && IsDeviceParameter(p)
                              && a.ArgumentKind != ArgumentKind.DefaultValue
                              && !(a.Value.ConstantValue is { HasValue: true, Value: null }));

    /// <summary>The method, constructor (".ctor"), property or field the node is in.</summary>
    public static string EnclosingMember(SyntaxNode node)
    {
        foreach (var a in node.Ancestors())
            switch (a)
            {
                case MethodDeclarationSyntax m: return m.Identifier.Text;
                case ConstructorDeclarationSyntax: return ".ctor";
                case PropertyDeclarationSyntax p: return p.Identifier.Text;
                case LocalFunctionStatementSyntax: continue;
                case FieldDeclarationSyntax f: return f.Declaration.Variables.First().Identifier.Text;
                case OperatorDeclarationSyntax o: return "operator" + o.OperatorToken.Text;
            }
        return "?";
    }

    private static string Shorten(string code)
    {
        var oneLine = string.Join(" ", code.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        return oneLine.Length <= 100 ? oneLine : oneLine[..97] + "...";
    }
}
