namespace Ect.Compute.Optim;

/// <summary>
/// The learning-rate schedule of locuslab/ect's imgnet branch (ct_training_loop.learning_rate_schedule, EDM2's
/// inverse-square-root decay without its ramp-up): lr = ref_lr / sqrt(max(cur_nimg / (ref_batches batch_size), 1)),
/// constant ref_lr when ref_batches is 0 (the -s-fast preset). cur_nimg is the image count before the step.
/// Deviation: no ramp-up term; ct_train never sets lr_rampup_kimg (NVlabs/edm2 ramps up over 10 Mimg).
/// </summary>
public sealed record InverseSqrtLearningRate(double RefLr, long RefBatches)
{
    public double At(long curNimg, int batchSize)
    {
        if (!(RefLr >= 0) || double.IsInfinity(RefLr)) throw new ArgumentOutOfRangeException(nameof(RefLr), RefLr, "ref_lr must be a finite number >= 0.");
        if (RefBatches < 0) throw new ArgumentOutOfRangeException(nameof(RefBatches), RefBatches, "ref_batches (decay) must be >= 0 (0 = constant lr).");
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive.");
        if (curNimg < 0) throw new ArgumentOutOfRangeException(nameof(curNimg), curNimg, "cur_nimg must be >= 0.");
        if (RefBatches == 0) return RefLr;
        return RefLr / Math.Sqrt(Math.Max(curNimg / ((double)RefBatches * batchSize), 1));
    }
}
