using Ect.Compute.Training;

namespace Ect.Actors.Checkpoints;

/// <summary>
/// The checkpoint file format, in one place. A daemon checkpoint (checkpoints/ckpt-STEP.ckpt) is an Ect.Compute
/// training state: one safetensors file tagged <c>ect.format</c> = <see cref="TrainState.FormatName"/>
/// (<c>ect-train-state/1</c>; the fake engine writes its own binary layout instead, see
/// <see cref="CheckpointMetadata"/>). Its metadata holds TrainState's counters as <c>ect.*</c> and the daemon's strings
/// as <c>user.*</c> (the keys below, without the prefix). The <c>ect.format</c> tag is the file's only version: a
/// format change gets a new tag, and the readers (<see cref="CheckpointMetadata"/>, <see cref="CheckpointModel"/>,
/// <see cref="WeightsFile"/>, <see cref="InitWeightsCheck"/>) say which tags they accept. `ect export` writes
/// <see cref="WeightsFile.FormatName"/> (<c>ect-weights/1</c>): EMA weights only.
/// </summary>
public static class CheckpointFormat
{
    /// <summary>The metadata key of the format tag (written by TrainState and WeightsFile).</summary>
    public const string FormatKey = "ect.format";

    /// <summary>The prefix of the daemon's metadata keys inside a safetensors checkpoint (TrainState.UserPrefix).</summary>
    public const string UserPrefix = "user.";

    // The daemon's metadata keys (TrainerActor writes them; resume, --rebuild-journal, inspect and export read them).
    /// <summary>Training steps completed (the run's count: it does not restart at tuning, unlike ect.step).</summary>
    public const string Step = "step";
    /// <summary>Thousands of training images at <see cref="Step"/> (round-trip "R" format).</summary>
    public const string Kimg = "kimg";
    /// <summary>The phase at capture time (Engine.Phases).</summary>
    public const string Phase = "phase";
    /// <summary>The ECT stage at capture time.</summary>
    public const string Stage = "stage";
    /// <summary>The data sampler's state after the last batch (the next batch follows from it).</summary>
    public const string Sampler = "sampler";
    /// <summary>The journaled live changes in effect, JSON [[step, key, value], ...] (for --rebuild-journal).</summary>
    public const string ConfigChanges = "config-changes";
    /// <summary>The user stages (`ect ctl stage`) up to this step, JSON [[step, stage], ...].</summary>
    public const string UserStages = "user-stages";
    /// <summary>SHA-256 of the run's journaled configuration (RunCoordinator.RunConfigDigest).</summary>
    public const string ConfigDigest = "config-digest";
    /// <summary>Written by `ect export`: the SHA-256 of the checkpoint it came from.</summary>
    public const string SourceSha256 = "source-sha256";
    // run-id, run-name, run-journal-id: RunIdentity.Metadata.

    // The network's description (the engines write them at capture; CheckpointModel, WeightsFile, `ect eval` read them).
    /// <summary>DDPM++/NCSN++: the SongUNetConfig as JSON (CheckpointModel.SerializeConfig).</summary>
    public const string NetworkConfig = "network-config";
    /// <summary>"edm2" for an EDM2 network (its config is then under <see cref="Edm2Config"/>); absent for a SongUNet.</summary>
    public const string NetworkKind = "network-kind";
    /// <summary>The value of <see cref="NetworkKind"/> for an EDM2 network.</summary>
    public const string NetworkKindEdm2 = Configuration.NetworkSettings.Edm2;
    /// <summary>EDM2: the Edm2UNetConfig as JSON (Edm2TrainingEngine.SerializeConfig).</summary>
    public const string Edm2Config = "edm2-config";
    /// <summary>What the phase trained: "ect" (a consistency model) or "edm" (pretraining: an EDM denoiser).</summary>
    public const string Precond = "precond";
    /// <summary>The preconditioning's sigma_min and sigma_data (round-trip "R" format).</summary>
    public const string SigmaMin = "sigma-min";
    public const string SigmaData = "sigma-data";
    /// <summary>The dataset the run trained on (`ect eval`'s default reference).</summary>
    public const string DataPath = "data-path";
    /// <summary>Provenance: the ect.network.init file the run started from, and its SHA-256.</summary>
    public const string InitWeights = "init-weights";
    public const string InitSha256 = "init-sha256";

    /// <summary>The tensor prefix of the EMA weights inside a training state.</summary>
    public const string StateEmaPrefix = "ema/";

    /// <summary>
    /// Where the generator's weights are in a file: a training state keeps the EMA under "ema/", an `ect export` or
    /// a plain EDM state dict at the top level.
    /// </summary>
    public static string EmaPrefix(IReadOnlyDictionary<string, string> metadata) =>
        metadata.TryGetValue(FormatKey, out var fmt) && fmt == TrainState.FormatName ? StateEmaPrefix : "";
}
