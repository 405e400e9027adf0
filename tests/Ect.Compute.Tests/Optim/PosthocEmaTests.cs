using Ect.Compute.Optim;
using Ect.Compute.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace Ect.Compute.Tests.Optim;

/// <summary>
/// EDM2's post-hoc EMA (PosthocEma, PhemaSnapshots): power-function EMA snapshots of a known trajectory, reconstructed
/// into (a) a profile that was tracked and snapshotted (the answer is that snapshot, coefficient 1), (b) a std that
/// was not tracked, on a linear trajectory whose power-function average has a closed form, a + b T (g+1)/(g+2).
/// </summary>
[Collection("TorchThreads")]
public class PosthocEmaTests(ITestOutputHelper output)
{
    private sealed class Vec : nn.Module
    {
        public readonly Parameter W;
        public Vec(int n) : base("Vec") { W = new Parameter(zeros(n, dtype: float64)); register_parameter("w", W); }
    }

    private static readonly double[] A = [0.3, -1.0, 2.0, 0.0];
    private static readonly double[] B = [0.01, 0.02, -0.005, 1.0];

    /// <summary>
    /// theta_k = a + b k after step k (batch 1, so cur_nimg = k), tracked by power-function EMAs of
    /// <paramref name="stds"/>, snapshots every <paramref name="every"/> steps into a folder; returns it and the EMAs at the end.
    /// </summary>
    private static (string Folder, List<Vec> Emas) Train(double[] stds, int steps, int every)
    {
        var folder = Directory.CreateTempSubdirectory("ect-phema-").FullName;
        var net = new Vec(A.Length);
        var emas = stds.Select(_ => new Vec(A.Length)).ToList();
        var pf = new PowerFunctionEma(net, stds, emas.Cast<nn.Module>().ToList());
        using var a = tensor(A, dtype: float64);
        using var b = tensor(B, dtype: float64);
        for (int k = 1; k <= steps; k++)
        {
            using (no_grad()) { using var bk = b.Times(k); using var w = a.Plus(bk); net.W.copy_(w); }
            pf.Update(k, 1);
            if (k % every == 0) PhemaSnapshots.Write(PhemaSnapshots.FileFor(folder, k), k, k, stds, emas.Cast<nn.Module>().ToList());
        }
        return (folder, emas);
    }

    [Fact]
    public void ATrackedProfileAtItsSnapshotIsReconstructedAsThatSnapshot()
    {
        torch.set_num_threads(1);
        var (folder, emas) = Train([0.05, 0.10], steps: 400, every: 50);
        var snaps = PhemaSnapshots.List(folder);
        snaps.Select(s => s.Step).Should().Equal(50, 100, 150, 200, 250, 300, 350, 400);
        var (w, coefs) = PhemaSnapshots.Reconstruct(snaps, 0.10);
        foreach (var (snap, std, coef) in coefs)
            coef.Should().BeApproximately(snap.Step == 400 && std == 0.10 ? 1.0 : 0.0, 1e-6, $"coefficient of {std} at step {snap.Step}");
        var expected = emas[1].W.detach().to(float32);
        (w["w"] - expected).abs().max().item<float>().Should().BeLessThan(1e-5f * (1 + expected.abs().max().item<float>()));
    }

    [Fact]
    public void AnUntrackedStdOfALinearTrajectoryMatchesTheClosedFormAndTheTrackedEma()
    {
        torch.set_num_threads(1);
        const int steps = 1000;
        const double target = 0.075;
        var (folder, _) = Train([0.05, 0.10], steps, every: 100);
        var (_, tracked) = Train([target, 0.05, 0.10], steps, every: steps); // the answer, tracked directly
        var (w, _) = PhemaSnapshots.Reconstruct(PhemaSnapshots.List(folder), target);
        var got = w["w"].to(float64).data<double>().ToArray();
        double g = PowerFunctionEma.StdToExp(target);
        var direct = tracked[0].W.detach().data<double>().ToArray();
        var inputs = tracked.Skip(1).Select(e => e.W.detach().data<double>().ToArray()).ToList();
        for (int i = 0; i < A.Length; i++)
        {
            double closed = A[i] + B[i] * steps * (g + 1) / (g + 2);
            double scale = Math.Abs(B[i]) * steps; // how far theta moved
            output.WriteLine($"[{i}] reconstructed {got[i]:F6}, tracked {direct[i]:F6}, closed form {closed:F6}, std 0.05 {inputs[0][i]:F6}, std 0.10 {inputs[1][i]:F6}");
            Math.Abs(got[i] - direct[i]).Should().BeLessThan(2e-3 * scale, $"element {i}: the reconstruction equals the EMA tracked at std {target}");
            Math.Abs(got[i] - closed).Should().BeLessThan(2e-3 * scale, $"element {i}: the power-function average of a + b t over [0, T]");
            foreach (var inp in inputs)
                Math.Abs(got[i] - inp[i]).Should().BeGreaterThan(1e-2 * scale, $"element {i}: the result is not one of the input profiles");
        }
    }

    [Fact]
    public void TheProfileInnerProductHasItsClosedFormAndIsSymmetric()
    {
        foreach (var (t, std) in new[] { (100.0, 0.05), (7.0, 0.1), (12345.0, 0.01) })
        {
            double g = PowerFunctionEma.StdToExp(std);
            PosthocEma.PowerFunctionCorrelation(t, std, t, std).Should().BeApproximately((g + 1) * (g + 1) / ((2 * g + 1) * t), 1e-12 / t);
        }
        PosthocEma.PowerFunctionCorrelation(100, 0.05, 300, 0.1).Should().BeApproximately(PosthocEma.PowerFunctionCorrelation(300, 0.1, 100, 0.05), 1e-15);
    }

    [Fact]
    public void DuplicateProfilesAndForeignFilesAreRefusedByName()
    {
        var dup = () => PosthocEma.SolveCoefficients([100, 100], [0.05, 0.05], [100], [0.07]);
        dup.Should().Throw<ArgumentException>().WithMessage("*singular*same profile*");
        var (folder, _) = Train([0.05], steps: 20, every: 10);
        var foreign = Path.Combine(folder, "phema-999999999.safetensors");
        File.WriteAllBytes(foreign, [1, 2, 3]);
        var list = () => PhemaSnapshots.List(folder);
        list.Should().Throw<InvalidDataException>().WithMessage($"*{foreign}*");
        var badStd = () => PhemaSnapshots.Reconstruct([], 0.5);
        badStd.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*0.5*");
    }
}
