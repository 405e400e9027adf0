using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Operations;

namespace Ect.Actors.Tests.TorchScalars;

/// <summary>
/// The rule of docs/torchsharp-scalar-race.md, checked on the source with Roslyn's semantic model: every Scalar our code
/// hands to libtorch is one we keep alive (a cached constant of Ect.Compute.ScalarConstants, or a `using var s =
/// v.ToScalar()`), because TorchSharp 0.107 leaves the Scalars it makes itself to the GC finalizer, which may free one
/// while libtorch reads it. Two findings: (a) a conversion to TorchSharp.Scalar through Scalar.op_Implicit (x * 0.5,
/// t.clamp(0), t.pow(2): the temporary is dropped at once); (b) a call of a TorchSharp method that makes and drops such
/// a Scalar itself (a + b of two tensors, t.square(), ...), listed in torchsharp-leaky-scalar-methods.txt, which
/// scripts/tools/torchsharp-scalar-scan generates from TorchSharp.dll's IL.
/// </summary>
public static class TorchScalarRules
{
    public sealed record Finding(string File, int Line, string Code, string Why)
    {
        public override string ToString() => $"{File}:{Line}: {Code}  ({Why})";
    }

    /// <summary>Implicit usings of Directory.Build.props (ImplicitUsings=enable, Microsoft.NET.Sdk).</summary>
    private const string ImplicitUsings =
        "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; " +
        "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";

    public static string ListPath(string repoRoot) =>
        Path.Combine(repoRoot, "tests", "Ect.Actors.Tests", "TorchScalars", "torchsharp-leaky-scalar-methods.txt");

    /// <summary>"Type+Nested.Name(ParamTypeNames)" per line, as the scan tool writes them; '#' lines are comments.</summary>
    public static HashSet<string> ReadList(string path) =>
        File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToHashSet(StringComparer.Ordinal);

    /// <summary>
    /// Compiles <paramref name="sources"/> (path, text) against the assemblies beside the tests (TorchSharp, Ect.*, ...)
    /// minus <paramref name="excludeReferences"/> (the project being compiled, so its source types are not doubled).
    /// </summary>
    /// <paramref name="assemblyName"/>: the project's own name, so that the InternalsVisibleTo of the assemblies it tests applies.
    public static CSharpCompilation Compile(IEnumerable<(string Path, string Text)> sources, IEnumerable<string> excludeReferences, string assemblyName = "ScalarRuleCheck")
    {
        var exclude = excludeReferences.ToHashSet(StringComparer.OrdinalIgnoreCase);
        var parse = new CSharpParseOptions(LanguageVersion.Preview);
        var trees = sources.Select(s => CSharpSyntaxTree.ParseText(s.Text, parse, s.Path))
            .Append(CSharpSyntaxTree.ParseText(ImplicitUsings, parse, "ImplicitUsings.g.cs"));
        return CSharpCompilation.Create(assemblyName, trees, References(exclude),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true, nullableContextOptions: NullableContextOptions.Enable));
    }

    private static List<MetadataReference> References(HashSet<string> exclude) =>
        AllReferences.Value.Where(r => !exclude.Contains(r.Name)).Select(r => r.Reference).ToList();

    /// <summary>The framework's assemblies and the managed ones beside the tests, read once (every compilation shares them).</summary>
    private static readonly Lazy<List<(string Name, MetadataReference Reference)>> AllReferences = new(() =>
    {
        var platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        var beside = Directory.GetFiles(AppContext.BaseDirectory, "*.dll");
        var byName = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var path in platform.Concat(beside))
            if (IsManaged(path)) byName.TryAdd(Path.GetFileName(path), path);
        return byName.Select(kv => (kv.Key, (MetadataReference)MetadataReference.CreateFromFile(kv.Value))).ToList();
    });

    private static bool IsManaged(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            using var pe = new PEReader(stream);
            return pe.HasMetadata && pe.GetMetadataReader().IsAssembly;
        }
        catch (BadImageFormatException) { return false; }
    }

    /// <summary>Errors in the files that use TorchSharp: a call the compiler could not bind is a call the rules cannot see.</summary>
    public static IEnumerable<string> BindingErrors(CSharpCompilation compilation) =>
        compilation.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error && d.Location.SourceTree is { } t && UsesTorchSharp(t))
            .Where(d => d.Id != "CS8795") // a [GeneratedRegex] partial method: its body comes from a source generator not run here
            .Select(d => d.ToString());

    private static bool UsesTorchSharp(SyntaxTree tree) => tree.GetText().ToString().Contains("TorchSharp", StringComparison.Ordinal);

    /// <summary>Every finding in the compilation's source trees, in file and line order.</summary>
    public static List<Finding> Check(CSharpCompilation compilation, IReadOnlySet<string> leakyMethods, Func<string, string>? displayPath = null)
    {
        var findings = new List<Finding>();
        foreach (var tree in compilation.SyntaxTrees.Where(UsesTorchSharp))
        {
            var model = compilation.GetSemanticModel(tree);
            var seen = new HashSet<IOperation>();
            // GetOperation gives the operation of a syntax node; implicit ones (a number's conversion to Scalar) share
            // their operand's syntax and are reached only as descendants of an operation above them.
            foreach (var node in tree.GetRoot().DescendantNodes())
            {
                if (model.GetOperation(node) is not { } root || seen.Contains(root)) continue;
                foreach (var op in root.DescendantsAndSelf())
                {
                    if (!seen.Add(op)) continue;
                    var why = Violation(op, leakyMethods);
                    if (why is null) continue;
                    var line = op.Syntax.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
                    findings.Add(new Finding(displayPath?.Invoke(tree.FilePath) ?? tree.FilePath, line, Shorten(op.Syntax.ToString()), why));
                }
            }
        }
        return findings.OrderBy(f => f.File, StringComparer.Ordinal).ThenBy(f => f.Line).ToList();
    }

    private static string? Violation(IOperation op, IReadOnlySet<string> leaky)
    {
        if (op is IConversionOperation { OperatorMethod: { } conv } && IsScalarImplicit(conv))
            return $"implicit conversion of {op.Children.FirstOrDefault()?.Type?.ToDisplayString() ?? "a value"} to a Scalar nobody keeps alive: use a ScalarConstants field or `using var s = v.ToScalar()`";
        IMethodSymbol? target = op switch
        {
            IInvocationOperation i => i.TargetMethod,
            IBinaryOperation b => b.OperatorMethod,
            IUnaryOperation u => u.OperatorMethod,
            ICompoundAssignmentOperation c => c.OperatorMethod,
            IObjectCreationOperation o => o.Constructor,
            IMethodReferenceOperation m => m.Method,
            IPropertyReferenceOperation p => p.Property.GetMethod,
            _ => null,
        };
        if (target is null) return null;
        var id = MethodId(target);
        return leaky.Contains(id) ? $"TorchSharp's {id} leaves its own Scalar to the finalizer: call the overload that takes a Scalar" : null;
    }

    private static bool IsScalarImplicit(IMethodSymbol m) =>
        m.Name == "op_Implicit" && m.ContainingType is { Name: "Scalar" } t && t.ContainingNamespace?.ToDisplayString() == "TorchSharp";

    /// <summary>The scan tool's spelling of a method: reflection's Type.FullName, '.', Name, '(' parameter Type.Names ')'.</summary>
    public static string MethodId(IMethodSymbol method)
    {
        var m = method.ReducedFrom ?? method; // an extension method called as x.M(): the static method
        m = m.OriginalDefinition;
        var name = m.MethodKind == MethodKind.Constructor ? ".ctor" : m.MetadataName;
        return $"{TypeFullName(m.ContainingType)}.{name}({string.Join(",", m.Parameters.Select(p => TypeName(p.Type) + (p.RefKind == RefKind.None ? "" : "&")))})";
    }

    private static string TypeFullName(INamedTypeSymbol t)
    {
        if (t.ContainingType is { } outer) return TypeFullName(outer) + "+" + t.MetadataName;
        var ns = t.ContainingNamespace is { IsGlobalNamespace: false } n ? n.ToDisplayString() + "." : "";
        return ns + t.MetadataName;
    }

    private static string TypeName(ITypeSymbol t) => t switch
    {
        IArrayTypeSymbol a => TypeName(a.ElementType) + "[" + new string(',', a.Rank - 1) + "]",
        IPointerTypeSymbol p => TypeName(p.PointedAtType) + "*",
        _ => t.MetadataName,
    };

    private static string Shorten(string code)
    {
        var oneLine = string.Join(" ", code.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        return oneLine.Length <= 100 ? oneLine : oneLine[..97] + "...";
    }

    /// <summary>Every public method and constructor of <paramref name="assemblyName"/> in its scan-tool spelling.</summary>
    public static HashSet<string> AllMethodIds(CSharpCompilation compilation, string assemblyName)
    {
        var asm = compilation.References.Select(compilation.GetAssemblyOrModuleSymbol).OfType<IAssemblySymbol>()
            .Single(a => a.Name == assemblyName);
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var types = new Stack<INamespaceOrTypeSymbol>([asm.GlobalNamespace]);
        while (types.TryPop(out var container))
            foreach (var member in container.GetMembers())
                switch (member)
                {
                    case INamespaceOrTypeSymbol nested: types.Push(nested); break;
                    case IMethodSymbol method: ids.Add(MethodId(method)); break;
                }
        return ids;
    }
}
