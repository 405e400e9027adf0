using System.Diagnostics;
using Xunit;

namespace Ect.Actors.Tests.Postgres;

/// <summary>
/// A PostgreSQL server for one test class: the one named by ECT_PG_CONNECTION when that is set, else a throwaway
/// server started with scripts/postgres.sh on a free loopback port and stopped (and deleted) afterwards.
/// When no server can be had, initialisation throws, so the tests fail with the reason rather than pass.
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    public const string EnvironmentVariable = "ECT_PG_CONNECTION";

    private string? _dir;
    private string _script = "";

    public string ConnectionString { get; private set; } = "";

    public async Task InitializeAsync()
    {
        if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } external)
        {
            ConnectionString = external;
            return;
        }
        _script = Path.Combine(RepoRoot.Find(), "scripts", "postgres.sh");
        if (!File.Exists(_script)) throw new InvalidOperationException($"'{_script}' is missing: cannot start PostgreSQL for the tests.");
        _dir = Path.Combine(Path.GetTempPath(), "ect-pg-" + Guid.NewGuid().ToString("N")[..12]);
        var port = Control.ControlRemotingTests.FreePort();
        var (code, stdout, stderr) = await Run("start", _dir, port.ToString());
        if (code != 0)
            throw new InvalidOperationException(
                $"PostgreSQL could not start ({_script} start {_dir} {port} exited {code}): {stderr.Trim()}\n" +
                $"Install PostgreSQL 15 (initdb, pg_ctl on PATH) or set {EnvironmentVariable} to a server's connection string.");
        ConnectionString = stdout.Trim().Split('\n').Last();
    }

    public async Task DisposeAsync()
    {
        if (_dir is null) return;
        await Run("stop", _dir);
        try { Directory.Delete(_dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(_script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var (o, e) = (p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
        await p.WaitForExitAsync();
        return (p.ExitCode, await o, await e);
    }
}
