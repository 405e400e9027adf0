namespace Ect.Actors.Sweeps;

/// <summary>
/// metric = A * compute^B, fitted by least squares on (ln compute, ln metric): the form in which the ECT paper reads
/// quality against tuning compute (a straight line on log-log axes). B &lt; 0 when more compute lowers the metric.
/// R2 is the coefficient of determination of the log-log fit.
/// </summary>
public sealed record PowerLawFit(double A, double B, double R2, int Points)
{
    public double Predict(double compute) => A * Math.Pow(compute, B);

    /// <summary>Fits the points whose compute and metric are finite and positive; null when fewer than 2 distinct computes remain.</summary>
    public static PowerLawFit? Fit(IEnumerable<(double Compute, double Metric)> points)
    {
        var p = points.Where(q => double.IsFinite(q.Compute) && double.IsFinite(q.Metric) && q.Compute > 0 && q.Metric > 0)
            .Select(q => (X: Math.Log(q.Compute), Y: Math.Log(q.Metric))).ToList();
        if (p.Select(q => q.X).Distinct().Count() < 2) return null;
        double mx = p.Average(q => q.X), my = p.Average(q => q.Y);
        double sxx = p.Sum(q => (q.X - mx) * (q.X - mx)), sxy = p.Sum(q => (q.X - mx) * (q.Y - my));
        double b = sxy / sxx, lnA = my - b * mx;
        double ssRes = p.Sum(q => Math.Pow(q.Y - (lnA + b * q.X), 2)), ssTot = p.Sum(q => (q.Y - my) * (q.Y - my));
        return new PowerLawFit(Math.Exp(lnA), b, ssTot == 0 ? 1 : 1 - ssRes / ssTot, p.Count);
    }
}
