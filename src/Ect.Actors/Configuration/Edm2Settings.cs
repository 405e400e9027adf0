namespace Ect.Actors.Configuration;

/// <summary>
/// ect.edm2.*: the imgnet branch's optimiser and EMA settings, read only when ect.network.type = edm2 (validated then,
/// one message per wrong key; under another network type the section is not read and this record holds the values
/// default.conf gives, unchecked). The Edm2 engine receives the record whole.
/// </summary>
/// <param name="AdamBeta1">Adam's beta1 (ect.edm2.adam-betas[0]; the branch's 0.9).</param>
/// <param name="AdamBeta2">Adam's beta2 (ect.edm2.adam-betas[1]; the branch's 0.99).</param>
/// <param name="LrDecayBatches">ref_batches of the inverse-square-root learning-rate decay, in batches (0 = constant).</param>
/// <param name="PhemaStds">The power-function EMAs' relative stds, each in (0, 0.28).</param>
/// <param name="PhemaSnapshotEvery">Write the power-function EMAs every this many tuning steps (0 = never).</param>
public sealed record Edm2Settings(double AdamBeta1, double AdamBeta2, long LrDecayBatches, IReadOnlyList<double> PhemaStds, long PhemaSnapshotEvery)
{
    internal static Edm2Settings Read(SettingsReader r)
    {
        var betas = r.DoubleList("ect.edm2.adam-betas", v => v.Count == 2 && v.All(b => b is >= 0 and < 1), "two values in [0, 1), e.g. [0.9, 0.99]");
        var decay = r.Long("ect.edm2.lr-decay-batches", v => v >= 0, "must be >= 0 (0 = constant lr)");
        var stds = r.DoubleList("ect.edm2.phema-stds", v => v.Count > 0 && v.All(s => s is > 0 and < 0.28) && v.Distinct().Count() == v.Count,
            "a non-empty list of distinct stds in (0, 0.28), e.g. [0.010, 0.050, 0.100]");
        var every = r.Long("ect.edm2.phema-snapshot-every-steps", v => v >= 0, "must be >= 0 (0 = never)");
        return new Edm2Settings(betas.Count == 2 ? betas[0] : 0.9, betas.Count == 2 ? betas[1] : 0.99, decay, stds, every);
    }
}
