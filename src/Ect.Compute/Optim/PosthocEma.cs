namespace Ect.Compute.Optim;

/// <summary>
/// EDM2's post-hoc EMA (Karras et al. 2024, Algorithm 3; training/phema.py solve_posthoc_coefficients): snapshots of
/// power-function EMAs taken during training, each an average of the weights with the profile
/// p(tau) ~ tau^gamma on [0, t] (t = the image count at the snapshot, gamma = std_to_exp(std)), are combined linearly
/// into the average with another profile (another std, or another end point). The coefficients solve the normal
/// equations A x = b of the least-squares fit of the target profile by the snapshot profiles, with A and b the
/// closed-form inner products of power-function profiles (power_function_correlation), then are scaled to sum to 1
/// per output. The offsets may be in any unit (images, steps): the inner products scale alike and the scaling cancels.
/// </summary>
public static class PosthocEma
{
    /// <summary>power_function_correlation: the inner product of the profiles (aOfs, aStd) and (bOfs, bStd).</summary>
    public static double PowerFunctionCorrelation(double aOfs, double aStd, double bOfs, double bStd)
    {
        double aExp = PowerFunctionEma.StdToExp(aStd), bExp = PowerFunctionEma.StdToExp(bStd);
        double tRatio = aOfs / bOfs;
        double tExp = aOfs < bOfs ? bExp : -aExp;
        double tMax = Math.Max(aOfs, bOfs);
        double num = (aExp + 1) * (bExp + 1) * Math.Pow(tRatio, tExp);
        double den = (aExp + bExp + 1) * tMax;
        return num / den;
    }

    /// <summary>
    /// solve_posthoc_coefficients: X [in, out] with out_j = sum_i X[i, j] in_i. Throws when the snapshots cannot
    /// represent the target (a singular system: two snapshots with the same offset and std) or an offset is not positive.
    /// </summary>
    public static double[,] SolveCoefficients(IReadOnlyList<double> inOfs, IReadOnlyList<double> inStd, IReadOnlyList<double> outOfs, IReadOnlyList<double> outStd)
    {
        int n = inOfs.Count, m = outOfs.Count;
        if (n == 0) throw new ArgumentException("post-hoc EMA needs at least one snapshot.", nameof(inOfs));
        if (inStd.Count != n) throw new ArgumentException($"{n} snapshot offsets but {inStd.Count} stds.", nameof(inStd));
        if (outStd.Count != m) throw new ArgumentException($"{m} output offsets but {outStd.Count} stds.", nameof(outStd));
        foreach (var o in inOfs.Concat(outOfs))
            if (!(o > 0) || double.IsInfinity(o)) throw new ArgumentOutOfRangeException(nameof(inOfs), o, "snapshot and output offsets (image counts) must be positive.");
        var a = new double[n, n];
        var b = new double[n, m];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++) a[i, j] = PowerFunctionCorrelation(inOfs[i], inStd[i], inOfs[j], inStd[j]);
            for (int j = 0; j < m; j++) b[i, j] = PowerFunctionCorrelation(inOfs[i], inStd[i], outOfs[j], outStd[j]);
        }
        var x = Solve(a, b);
        for (int j = 0; j < m; j++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++) sum += x[i, j];
            for (int i = 0; i < n; i++) x[i, j] /= sum;
        }
        return x;
    }

    /// <summary>A X = B by Gaussian elimination with partial pivoting in float64 (np.linalg.solve's LU, LAPACK gesv).</summary>
    internal static double[,] Solve(double[,] a, double[,] b)
    {
        int n = a.GetLength(0), m = b.GetLength(1);
        var lu = (double[,])a.Clone();
        var x = (double[,])b.Clone();
        double scale = 0;
        foreach (var v in lu) scale = Math.Max(scale, Math.Abs(v));
        for (int k = 0; k < n; k++)
        {
            int piv = k;
            for (int i = k + 1; i < n; i++) if (Math.Abs(lu[i, k]) > Math.Abs(lu[piv, k])) piv = i;
            if (!(Math.Abs(lu[piv, k]) > scale * 1e-15))
                throw new ArgumentException("the post-hoc EMA system is singular: two snapshots have the same profile (same image count and std). Remove the duplicate snapshot file.");
            if (piv != k)
            {
                for (int j = 0; j < n; j++) (lu[k, j], lu[piv, j]) = (lu[piv, j], lu[k, j]);
                for (int j = 0; j < m; j++) (x[k, j], x[piv, j]) = (x[piv, j], x[k, j]);
            }
            for (int i = k + 1; i < n; i++)
            {
                double f = lu[i, k] / lu[k, k];
                if (f == 0) continue;
                for (int j = k; j < n; j++) lu[i, j] -= f * lu[k, j];
                for (int j = 0; j < m; j++) x[i, j] -= f * x[k, j];
            }
        }
        for (int j = 0; j < m; j++)
            for (int i = n - 1; i >= 0; i--)
            {
                double s = x[i, j];
                for (int k = i + 1; k < n; k++) s -= lu[i, k] * x[k, j];
                x[i, j] = s / lu[i, i];
            }
        return x;
    }
}
