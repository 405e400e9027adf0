using Ect.Compute.Losses;
using Ect.Compute.Optim;

namespace Ect.Actors.Configuration;

/// <summary>ect.pretrain.*: EDM pretraining (the loss's log-normal sigma distribution; the lr is RunSettings.PretrainLr, a live key).</summary>
public sealed record PretrainSettings(double PMean, double PStd);

/// <summary>
/// ect.tuning.*: ECT tuning's optimiser and loss, validated once by <see cref="RunSettings.From"/> and handed to the
/// engine whole (TorchEngineOptions, Edm2EngineOptions), not re-read by key. The paper's symbols: the mapping r(t) (sigmoid or const) with
/// q, k, b; the loss's c (pseudo-Huber); P_mean, P_std of t.
/// </summary>
public sealed record TuningSettings(OptimizerKind Optimizer, double PMean, double PStd, MappingKind Mapping, double Q, double K, double B, double C);
