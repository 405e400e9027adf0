using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Tests.Eval;
using Ect.Compute.Losses;
using Ect.Compute.Networks;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Compute.Runtime;
using Ect.Compute.Sampling;
using Ect.Compute.Training;
using Ect.Data;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Actors.Tests.TorchDevices;

/// <summary>Run alone: these tests flip libtorch's process-wide determinism switches and seed the global RNG.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchDeviceCollection { public const string Name = "torch device switches"; }

/// <summary>
/// Issue 18 at run time: ect.run.device is resolved once and refused with its fix; ModulePlacement keeps names and fields;
/// every code path (training step, samplers, evaluator, data batches, checkpoint load) leaves every parameter, buffer,
/// gradient, optimizer state and output on the configured device. libtorch's meta device cannot run a convolution from
/// C++, so on this CPU-only machine the configured device is the CPU and the checks are device == cpu everywhere;
/// scripts/gpu-check.sh runs the same DeviceCheck with cuda on a GPU machine.
/// </summary>
[Collection(TorchDeviceCollection.Name)]
public sealed class DevicePlacementTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-device-").FullName;
    private string DataPath => Path.Combine(_dir, "train-images-idx3-ubyte");
    private static readonly SongUNetConfig Tiny = SongUNetConfig.DdpmPP(16, 1, 0, 8, [1, 2], 1, [], 0.1);

    public DevicePlacementTests() => TinyCheckpointFixture.WriteIdx(DataPath, 16);
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private static readonly ComputeDevice.CudaProbe NoCuda = new(false, 0);
    private static readonly ComputeDevice.CudaProbe OneGpu = new(true, 1);

    [Theory]
    [InlineData("cpu", "cpu")]
    [InlineData("auto", "cpu")]
    [InlineData(" cpu ", "cpu")]
    public void Cpu_and_auto_resolve_to_the_cpu_without_cuda(string value, string expected) =>
        ComputeDevice.Resolve(value, NoCuda).ToString().Should().Be(expected);

    [Theory]
    [InlineData("auto", "cuda:0")]
    [InlineData("cuda", "cuda:0")]
    [InlineData("cuda:0", "cuda:0")]
    public void Auto_and_cuda_pick_a_device_libtorch_sees(string value, string expected) =>
        ComputeDevice.Resolve(value, OneGpu).ToString().Should().Be(expected);

    [Theory]
    [InlineData("gpu")]
    [InlineData("CUDA")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    [InlineData("")]
    public void A_bad_spelling_is_refused_naming_the_key_and_the_value(string value)
    {
        var act = () => ComputeDevice.Resolve(value, OneGpu);
        act.Should().Throw<ArgumentException>().WithMessage($"ect.run.device = \"{value}\": must be auto, cpu, cuda or cuda:N*");
        ComputeDevice.IsValidSetting(value).Should().BeFalse();
    }

    [Fact]
    public void A_device_index_past_the_last_is_refused_naming_the_devices()
    {
        var act = () => ComputeDevice.Resolve("cuda:1", OneGpu);
        act.Should().Throw<ArgumentException>().WithMessage("ect.run.device = cuda:1: libtorch sees 1 CUDA device(s) (cuda:0 to cuda:0)*");
    }

    [Fact]
    public void Cuda_on_this_builds_cpu_libtorch_is_refused_naming_the_package_and_the_build_switch()
    {
        ComputeDevice.BuildBackend.Should().Be("cpu", "CI builds the default (TorchSharp-cpu)");
        torch.cuda.is_available().Should().BeFalse("TorchSharp-cpu has no CUDA");
        var act = () => ComputeDevice.Resolve("cuda");
        act.Should().Throw<ArgumentException>().WithMessage("*ect.run.device = cuda*TorchSharp-cpu*-p:TorchBackend=cuda*TorchSharp-cuda-linux*");
        ComputeDevice.Resolve("auto").IsCpu.Should().BeTrue();
    }

    private Akka.Configuration.Config Config(params string[] more) => EctConfiguration.Load(null, [
        "ect.run.engine=torch", $"ect.data.path={DataPath}", "ect.network.model-channels=8", "ect.network.channel-mult=[1,2]",
        "ect.network.num-blocks=1", "ect.network.attn-resolutions=[]", "ect.data.resolution=16", .. more]);

    [Fact]
    public void The_configuration_refuses_a_bad_device_and_engines_refuse_cuda_before_any_work()
    {
        var bad = () => RunSettings.From(Config("ect.run.device=gpu"));
        bad.Should().Throw<ConfigurationException>().WithMessage("*ect.run.device = *gpu*must be auto, cpu, cuda or cuda:N*");
        var s = RunSettings.From(Config("ect.run.device=cuda"));
        var check = () => Engines.Check(s);
        check.Should().Throw<ConfigurationException>().WithMessage("*ect.run.device = cuda*-p:TorchBackend=cuda*");
        RunSettings.From(Config()).Device.Should().Be("auto", "hocon/default.conf's default");
    }

    [Fact]
    public void TorchSharps_Module_to_loses_our_fields_but_ModulePlacement_keeps_names_and_fields()
    {
        // A dtype move runs the same field/registration code as a device move, and runs on the CPU.
        torch.random.manual_seed(1);
        using var theirs = new GroupNorm(8);
        theirs.to(float64);
        bool fieldIsTheMovedParameter;
        try
        {
            var reg = theirs.named_parameters(recurse: false).Single(p => p.name == "weight").parameter;
            fieldIsTheMovedParameter = theirs.Weight.Handle == reg.Handle && theirs.Weight.dtype == float64;
        }
        catch (InvalidOperationException) { fieldIsTheMovedParameter = false; } // measured: "Tensor invalid -- empty handle"
        fieldIsTheMovedParameter.Should().BeFalse(
            "TorchSharp 0.107's Module.to leaves our auto-property fields on a dead or unregistered tensor: why ModulePlacement exists");

        using var net = new EctPrecond(Tiny);
        var keys = net.state_dict().Keys.ToList();
        ModulePlacement.ConvertTo(net, float64);
        net.state_dict().Keys.Should().Equal(keys);
        net.parameters().Should().OnlyContain(p => p.dtype == float64);
        var norm = net.modules().OfType<GroupNorm>().First();
        var registered = norm.named_parameters(recurse: false).Single(p => p.name == "weight").parameter;
        norm.Weight.Handle.Should().Be(registered.Handle, "the field the forward pass reads is the registered parameter");
        using var x = randn([2, 1, 16, 16], dtype: float64, device: CPU);
        using var noise = tensor(new[] { 0.1, -0.2 }, dtype: float64, device: CPU);
        // The U-Net itself (the preconditioner casts to float32 by design): every layer must read the converted weights.
        using var d = net.Model.Forward(x, noise, null, null, null);
        d.dtype.Should().Be(float64, "every layer reads converted weights (a float32 one left behind would make the convolution refuse)");

        var handles = net.parameters().Select(p => p.Handle).ToList();
        ModulePlacement.MoveTo(net, CPU);
        net.parameters().Select(p => p.Handle).Should().Equal(handles, "a module already on the device is left as it is");
    }

    [Fact]
    public void DeviceCheck_finds_a_tensor_on_another_device()
    {
        using var here = zeros(3, device: CPU);
        using var there = empty(3, device: new Device(DeviceType.META));
        DeviceCheck.Misplaced(CPU, outputs: [("here", here), ("there", there)]).Should().ContainSingle().Which.Should().StartWith("there: meta");
        var act = () => DeviceCheck.Require(CPU, "test", outputs: [("there", there)]);
        act.Should().Throw<InvalidOperationException>().WithMessage("test: 1 tensor(s) not on cpu*there: meta*");
    }

    [Fact]
    public void Engine_step_samplers_evaluator_batches_and_checkpoint_load_stay_on_the_configured_device()
    {
        var device = ComputeDevice.Resolve("auto"); // the CPU here; cuda:0 where gpu-check.sh runs this
        var o = new TorchEngineOptions(Tiny, BatchSize: 4, Seed: 3, Threads: 1, EmaBeta: 0.9, PretrainLr: 1e-3, Pretrain: new PretrainSettings(-1.2, 1.2),
            TuningLr: 1e-3, Tuning: new TuningSettings(OptimizerKind.RAdam, -1.1, 2.0, MappingKind.Sigmoid, Q: 2, K: 8, B: 1, C: 0)) { Device = device };
        using var engine = new TorchTrainingEngine(o, Path.Combine(_dir, "scratch"));
        engine.Device.Should().Be(device);
        engine.SetPhase(Phases.Tuning);
        using var data = Ect.Data.Sources.DatasetSource.Load(DataPath);
        var assembler = new BatchAssembler(data, 4, 3, new BatchOptions { Resolution = 16, UseLabels = false });
        for (var i = 0; i < 2; i++)
            using (var b = new Batch(assembler.Next(), 4, ""))
            {
                var batch = (ImageBatch)b.Payload;
                DeviceCheck.Misplaced(CPU, outputs: [("batch images", batch.Images)]).Should().BeEmpty("batches are staged on the host");
                double.IsFinite(engine.Step(b).Loss).Should().BeTrue();
            }
        var step = StepOf(engine);
        DeviceCheck.Misplaced(device.Device, step.Net, step.Optimizer).Should().BeEmpty();
        DeviceCheck.Misplaced(device.Device, step.EmaNet).Should().BeEmpty();
        step.Net.parameters().Any(p => p.grad is not null).Should().BeTrue("the check saw the gradients too");

        // Samplers and the evaluator's generator.
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var latents = randn([2, 1, 16, 16], dtype: float64, device: device.Device);
            var one = ConsistencySampler.Sample(step.EmaNet, latents, [80.0, 0.821]);
            var heun = HeunSampler.Sample(step.EmaNet, latents, new HeunSamplerConfig(NumSteps: 2));
            var generated = Ect.Actors.Evaluation.ImageGenerator.Generate(step.EmaNet, new Ect.Actors.Evaluation.SamplerChoice.Consistency([80.0]), 2, 0, 7);
            DeviceCheck.Misplaced(device.Device, outputs: [("consistency sample", one), ("heun sample", heun), ("generated images", generated)]).Should().BeEmpty();
        }
        using (var ema = engine.CaptureEma())
            ema.Generate(2, 1, 1, 80, 0.821).Should().HaveCount(2 * 16 * 16).And.OnlyContain(v => float.IsFinite(v));

        // Checkpoint load into a fresh engine: the loaded weights and optimizer state sit on the device.
        var ckpt = Path.Combine(_dir, "ckpt.safetensors");
        using (var image = engine.Capture(new Dictionary<string, string> { ["step"] = "2" })) image.WriteTo(ckpt);
        using var loaded = new TorchTrainingEngine(o, Path.Combine(_dir, "scratch2"));
        loaded.SetPhase(Phases.Tuning);
        loaded.LoadCheckpoint(ckpt);
        loaded.WeightsDigest().Should().Be(engine.WeightsDigest());
        var ls = StepOf(loaded);
        DeviceCheck.Misplaced(device.Device, ls.Net, ls.Optimizer).Should().BeEmpty();
        DeviceCheck.Misplaced(device.Device, ls.EmaNet).Should().BeEmpty();
    }

    private static TrainStep StepOf(TorchTrainingEngine engine) => engine.StepForInspection;

    /// <summary>
    /// The EDM2 engine (its CUDA refusal lifted, issue 18 point 3): network, EMA, every power-function EMA copy, the
    /// optimizer state and gradients sit on the configured device after pretraining and tuning steps and after a
    /// checkpoint load into a fresh engine (the CPU here; cuda where gpu-check.sh runs this class).
    /// </summary>
    [Fact]
    public void Edm2_engine_step_phema_copies_and_checkpoint_load_stay_on_the_configured_device()
    {
        var device = ComputeDevice.Resolve("auto");
        var net = new Ect.Compute.Networks.Edm2.Edm2UNetConfig
        {
            ImgResolution = 16, ImgChannels = 1, LabelDim = 0, ModelChannels = 16, ChannelMult = [1, 2], NumBlocks = 1, AttnResolutions = [],
        };
        var o = new Edm2EngineOptions(net, BatchSize: 4, Seed: 7, Threads: 1, EmaBeta: 0.9,
            PretrainLr: 1e-3, Pretrain: new PretrainSettings(-1.2, 1.2),
            TuningLr: 1e-4, Tuning: new TuningSettings(OptimizerKind.Adam, -0.8, 1.6, MappingKind.Sigmoid, Q: 4, K: 8, B: 1, C: 0.06),
            Edm2: new Edm2Settings(0.9, 0.99, 0, [0.05, 0.1], 0)) { DataPath = DataPath, Device = device };
        using var data = Ect.Data.Sources.DatasetSource.Load(DataPath);
        var assembler = new BatchAssembler(data, 4, 7, new BatchOptions { Resolution = 16, UseLabels = false });
        using var engine = new Edm2TrainingEngine(o, Path.Combine(_dir, "edm2"));
        engine.Device.Should().Be(device);
        engine.SetPhase(Phases.Pretrain);
        using (var b = new Batch(assembler.Next(), 4, "")) double.IsFinite(engine.Step(b).Loss).Should().BeTrue();
        engine.SetPhase(Phases.Tuning);
        using (var b = new Batch(assembler.Next(), 4, "")) double.IsFinite(engine.Step(b).Loss).Should().BeTrue();
        var step = engine.StepForInspection;
        DeviceCheck.Misplaced(device.Device, step.Net, step.Optimizer).Should().BeEmpty();
        DeviceCheck.Misplaced(device.Device, step.EmaNet).Should().BeEmpty();
        engine.PhemaNetsForInspection.Should().HaveCount(2);
        foreach (var phema in engine.PhemaNetsForInspection) DeviceCheck.Misplaced(device.Device, phema).Should().BeEmpty();
        step.Net.parameters().Any(p => p.grad is not null).Should().BeTrue("the check saw the gradients too");

        var ckpt = Path.Combine(_dir, "edm2-ckpt.safetensors");
        using (var image = engine.Capture(new Dictionary<string, string> { ["step"] = "2", ["phase"] = "tuning" })) image.WriteTo(ckpt);
        using var loaded = new Edm2TrainingEngine(o, Path.Combine(_dir, "edm2-loaded"));
        loaded.SetPhase(Phases.Tuning);
        loaded.LoadCheckpoint(ckpt);
        loaded.WeightsDigest().Should().Be(engine.WeightsDigest());
        loaded.PhemaDigest().Should().Be(engine.PhemaDigest());
        var ls = loaded.StepForInspection;
        DeviceCheck.Misplaced(device.Device, ls.Net, ls.Optimizer).Should().BeEmpty();
        foreach (var phema in loaded.PhemaNetsForInspection) DeviceCheck.Misplaced(device.Device, phema).Should().BeEmpty();
    }

    [Fact]
    public void The_determinism_switch_reaches_libtorchs_context()
    {
        try
        {
            LibTorchContext.SetDeterministic(true);
            LibTorchContext.DeterministicAlgorithms.Should().BeTrue();
            LibTorchContext.DeterministicCuDnn.Should().BeTrue();
            LibTorchContext.SetDeterministic(false);
            LibTorchContext.DeterministicAlgorithms.Should().BeFalse();
            LibTorchContext.DeterministicCuDnn.Should().BeFalse();
        }
        finally { LibTorchContext.SetDeterministic(false); }
        ComputeDevice.Cpu.ApplyDeterminism(true);
        LibTorchContext.DeterministicAlgorithms.Should().BeFalse("on the CPU the switch changes nothing (the golden tests pin today's bits)");
    }
}
