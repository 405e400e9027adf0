using Ect.Actors.Configuration;
using Ect.Actors.Sweeps;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>Issue 19, point 2 and 4: a sweep SPEC expands to stable runs, and bad specs are refused naming file and key.</summary>
public class SweepSpecTests
{
    private static string Write(string text, string name = "sweep.conf")
    {
        var dir = Directory.CreateTempSubdirectory("ect-sweep-spec-").FullName;
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private const string Grid = """
        sweep {
          name = "recipe-a"
          metric = "fd-resnet18-2step"
          set { ect.run.engine = fake }
          grid { "ect.network.dropout" = [0, 0.1], "ect.tuning.double-ticks" = [1, 2] }
          list = [ { "ect.tuning.lr" = 0.0001 }, { "ect.tuning.lr" = 0.0002 } ]
        }
        """;

    [Fact]
    public void A_grid_times_a_list_expands_to_every_combination_with_stable_unique_ids()
    {
        var spec = SweepSpec.Load(Write(Grid));
        spec.Runs.Should().HaveCount(8);
        spec.Runs.Select(r => r.Id).Should().OnlyHaveUniqueItems().And.AllSatisfy(id => id.Should().MatchRegex("^recipe-a-[0-9]{3}-[0-9a-f]{6}$"));
        spec.Runs.Select(r => string.Join(",", r.Overlay.Select(kv => kv.Key + "=" + kv.Value))).Should().OnlyHaveUniqueItems();
        spec.Runs[0].Overlay.Select(kv => kv.Key).Should().Equal("ect.tuning.lr", "ect.network.dropout", "ect.tuning.double-ticks");
        spec.Metric.Should().Be("fd-resnet18-2step");
        spec.MetricSteps.Should().Be(2);
        spec.Minimize.Should().BeTrue();
        // Same spec, keys of the grid in another order: the same runs (the id hashes the sorted overlay).
        var swapped = SweepSpec.Load(Write(Grid.Replace("\"ect.network.dropout\" = [0, 0.1], \"ect.tuning.double-ticks\" = [1, 2]",
            "\"ect.tuning.double-ticks\" = [1, 2], \"ect.network.dropout\" = [0, 0.1]")));
        swapped.Runs.Select(r => r.Id[^6..]).Should().BeEquivalentTo(spec.Runs.Select(r => r.Id[^6..]));
        // Each run's configuration resolves with its overlay over the base.
        var config = spec.ConfigOf(spec.Runs[^1]);
        config.GetString("ect.run.engine").Should().Be("fake");
        config.GetDouble("ect.tuning.lr").Should().Be(0.0002);
        config.GetDouble("ect.network.dropout").Should().Be(0.1);
    }

    [Theory]
    [InlineData("grid { \"ect.network.dropoutt\" = [0, 0.1] }", "ect.network.dropoutt")]
    [InlineData("grid { \"ect.network.dropout\" = [] }", "empty list")]
    [InlineData("grid { \"ect.network.dropout\" = [0, 0] }", "repeated")]
    [InlineData("grid { }", "sweep.grid")]
    [InlineData("list = []", "sweep.list")]
    [InlineData("grids { \"ect.network.dropout\" = [0] }", "sweep.grids")]
    [InlineData("grid { \"ect.data.batch-size\" = [0] }", "batch-size")]
    [InlineData("list = [{ \"ect.network.dropout\" = 0.1 }]\n grid { \"ect.network.dropout\" = [0] }", "twice")]
    public void A_bad_spec_is_refused_naming_the_file_and_the_problem(string body, string expected)
    {
        var path = Write($$"""
            sweep {
              name = "bad"
              metric = "fd-resnet18-1step"
              {{body}}
            }
            """);
        var act = () => SweepSpec.Load(path);
        act.Should().Throw<ConfigurationException>().Which.Message.Should().Contain(path).And.Contain(expected);
    }

    [Theory]
    [InlineData("name = \"Bad Name\"", "sweep.name")]
    [InlineData("metric = \"fd\"", "sweep.metric")]
    [InlineData("goal = best", "sweep.goal")]
    [InlineData("base = \"missing.conf\"", "missing.conf")]
    public void Bad_header_keys_are_refused(string line, string expected)
    {
        var text = $$"""
            sweep {
              name = "ok"
              metric = "fd-resnet18-1step"
              grid { "ect.network.dropout" = [0] }
              {{line}}
            }
            """;
        var act = () => SweepSpec.Load(Write(text));
        act.Should().Throw<ConfigurationException>().Which.Message.Should().Contain(expected);
    }

    [Fact]
    public void A_spec_without_overlays_is_refused() =>
        FluentActions.Invoking(() => SweepSpec.Load(Write("sweep { name = x, metric = \"fd-resnet18-1step\" }")))
            .Should().Throw<ConfigurationException>().Which.Message.Should().Contain("neither `grid` nor `list`");
}

public class PowerLawFitTests
{
    [Fact]
    public void An_exact_power_law_is_recovered()
    {
        var points = new[] { 1e3, 4e3, 1.6e4, 6.4e4 }.Select(c => (c, 250 * Math.Pow(c, -0.3))).ToList();
        var fit = PowerLawFit.Fit(points)!;
        fit.A.Should().BeApproximately(250, 1e-6);
        fit.B.Should().BeApproximately(-0.3, 1e-9);
        fit.R2.Should().BeApproximately(1, 1e-12);
        fit.Predict(2e3).Should().BeApproximately(250 * Math.Pow(2e3, -0.3), 1e-6);
    }

    [Fact]
    public void Noisy_points_give_the_least_squares_line_in_log_log_space()
    {
        // ln y = 2 + (-0.5) ln x + e, with e = +0.1, -0.1, +0.1, -0.1 at ln x = 0, 1, 2, 3: the slope's least squares
        // estimate is -0.5 - 0.2 * sum((x - 1.5) * e') / sum((x - 1.5)^2) with e' = (1, -1, 1, -1)/2... computed here directly.
        double[] lx = [0, 1, 2, 3], e = [0.1, -0.1, 0.1, -0.1];
        var pts = lx.Select((x, i) => (Math.Exp(x), Math.Exp(2 - 0.5 * x + e[i]))).ToList();
        var fit = PowerLawFit.Fit(pts)!;
        double mx = 1.5, sxx = lx.Sum(x => (x - mx) * (x - mx)), sxe = lx.Select((x, i) => (x - mx) * e[i]).Sum();
        fit.B.Should().BeApproximately(-0.5 + sxe / sxx, 1e-12);
        fit.R2.Should().BeLessThan(1);
    }

    [Fact]
    public void Too_few_or_unusable_points_give_no_fit()
    {
        PowerLawFit.Fit([(1000, 5.0)]).Should().BeNull();
        PowerLawFit.Fit([(1000, 5.0), (1000, 6.0)]).Should().BeNull("one compute only");
        PowerLawFit.Fit([(1000, 5.0), (0, 6.0), (2000, double.NaN)]).Should().BeNull("non-positive and non-finite points are dropped");
    }
}

/// <summary>
/// Issue 19 point 6: the power law is fitted on the sweep's compute axis (one recipe at several lengths), not on every
/// run (the first recipe sweep's fit over all its runs mixed in lr and q changes: R2 0.68 instead of 0.987).
/// </summary>
public class SweepComputeAxisTests
{
    private static SweepRunResult Row(SweepRun run, double images, double metric) =>
        new(run.Id, run.Overlay.ToDictionary(kv => kv.Key, kv => kv.Value), "finished", (long)(images / 64), images, 1, metric,
            new Dictionary<string, double> { ["fd-resnet18-2step"] = metric });

    [Fact]
    public void The_fit_uses_the_runs_of_one_recipe_at_different_computes_with_the_scaled_keys_read_as_ratios()
    {
        var dir = Directory.CreateTempSubdirectory("ect-sweep-axis-").FullName;
        var path = Path.Combine(dir, "axis.conf");
        File.WriteAllText(path, """
            sweep {
              name = "axis"
              metric = "fd-resnet18-2step"
              compute-key = "ect.tuning.steps"
              compute-scaled = ["ect.tuning.double-ticks"]
              set { ect.run.engine = fake }
              list = [
                { "ect.tuning.steps" = 1600, "ect.tuning.double-ticks" = 16 }
                { "ect.tuning.steps" = 200, "ect.tuning.double-ticks" = 2 }
                { "ect.tuning.steps" = 400, "ect.tuning.double-ticks" = 4 }
                { "ect.tuning.steps" = 800 }
                { "ect.tuning.steps" = 800, "ect.tuning.lr" = 2e-4 }
                { "ect.tuning.steps" = 800, "ect.tuning.q" = 256.0, "ect.tuning.double-ticks" = 64 }
                { "ect.tuning.steps" = 1600, "ect.tuning.double-ticks" = 16, "ect.tuning.lr" = 2e-4 }
              ]
            }
            """);
        var spec = SweepSpec.Load(path);
        spec.ComputeScaled.Should().Equal("ect.tuning.double-ticks");
        // The four runs of the default recipe lie on 7395 x images^-0.336 (the first sweep's law); the others well off it.
        double Law(double images) => 7395 * Math.Pow(images, -0.336);
        var rows = new List<SweepRunResult>
        {
            Row(spec.Runs[0], 102_400, Law(102_400)), Row(spec.Runs[1], 12_800, Law(12_800)), Row(spec.Runs[2], 25_600, Law(25_600)),
            Row(spec.Runs[3], 51_200, Law(51_200)), Row(spec.Runs[4], 51_200, 175.3), Row(spec.Runs[5], 51_200, 272.9),
            Row(spec.Runs[6], 102_400, 150.0),
        };
        var axis = SweepResults.ComputeAxis(spec, rows);
        axis.Select(r => r.Run).Should().BeEquivalentTo(new[] { spec.Runs[0].Id, spec.Runs[1].Id, spec.Runs[2].Id, spec.Runs[3].Id },
            "run 3 leaves double-ticks at its default 8 = 800/100, the ratio of the other three; lr and q make other recipes");
        var fit = SweepResults.Fit(axis)!;
        fit.B.Should().BeApproximately(-0.336, 1e-9);
        fit.R2.Should().BeApproximately(1, 1e-9);
        SweepResults.Fit(rows)!.R2.Should().BeLessThan(0.95, "a fit over every run mixes recipes (what the axis avoids)");

        // The table records which runs the law was fitted on.
        var written = SweepResults.Write(spec, dir, rows);
        var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(written[0])).RootElement.GetProperty("fit");
        json.GetProperty("runs").EnumerateArray().Select(e => e.GetString()).Should().HaveCount(4).And.NotContain(spec.Runs[4].Id);
        json.GetProperty("b").GetDouble().Should().BeApproximately(-0.336, 1e-9);
        written.Should().Contain(p => p.EndsWith(SweepResults.PlotFile));

        // A saved table reads back as the same runs (`ect sweep results SPEC --table FILE`: a sweep whose run root is gone) ...
        var back = SweepResults.ReadTable(spec, written[0]);
        back.Select(r => (r.Run, r.Images, r.Metric)).Should().Equal(rows.Select(r => (r.Run, r.Images, r.Metric)));
        SweepResults.Fit(SweepResults.ComputeAxis(spec, back))!.B.Should().BeApproximately(-0.336, 1e-9);
        // ... and a table whose run has another overlay than the spec gives it is refused, naming the file and the run.
        var tampered = File.ReadAllText(written[0]).Replace("\"ect.tuning.lr\": \"2e-4\"", "\"ect.tuning.lr\": \"3e-4\"");
        tampered.Should().NotBe(File.ReadAllText(written[0]));
        var bad = Path.Combine(dir, "tampered.json");
        File.WriteAllText(bad, tampered);
        FluentActions.Invoking(() => SweepResults.ReadTable(spec, bad)).Should().Throw<ConfigurationException>()
            .Which.Message.Should().Contain("tampered.json").And.Contain(spec.Runs[4].Id);
    }

    [Fact]
    public void A_scaled_key_needs_a_compute_key_and_must_be_a_configuration_key()
    {
        var dir = Directory.CreateTempSubdirectory("ect-sweep-axis-").FullName;
        string Spec(string extra)
        {
            var p = Path.Combine(dir, Guid.NewGuid().ToString("N")[..6] + ".conf");
            File.WriteAllText(p, $$"""sweep { name = "x", metric = "fd-resnet18-2step", {{extra}}, list = [ { "ect.tuning.steps" = 10 } ] }""");
            return p;
        }
        FluentActions.Invoking(() => SweepSpec.Load(Spec("compute-scaled = [\"ect.tuning.double-ticks\"]")))
            .Should().Throw<ConfigurationException>().Which.Message.Should().Contain("sweep.compute-scaled").And.Contain("compute-key");
        FluentActions.Invoking(() => SweepSpec.Load(Spec("compute-key = \"ect.tuning.steps\", compute-scaled = [\"ect.tuning.double-tick\"]")))
            .Should().Throw<ConfigurationException>().Which.Message.Should().Contain("ect.tuning.double-tick").And.Contain("not a configuration key");
    }
}
