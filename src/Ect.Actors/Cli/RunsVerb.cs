using System.CommandLine;
using System.Globalization;
using Ect.Actors.Configuration;
using Ect.Actors.Persistence;
using Microsoft.Data.Sqlite;
using Spectre.Console;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect runs --journal PATH|RUN_DIR|postgresql|CONNECTION_STRING`: the runs in an event journal written by
/// Akka.Persistence.Sql (a SQLite file, or a PostgreSQL database shared by many runs), each with its id, name,
/// run directory, phase, step and last event (<see cref="JournalCatalog"/>). Reads only.
/// </summary>
public sealed class RunsVerb : ICliVerb
{
    public int Order => 50;

    /// <summary>The journal file name in a run directory (ect.persistence.sqlite-file's default).</summary>
    public const string DefaultJournalFile = RunJournal.DefaultFile;

    /// <summary>The --journal value that selects the PostgreSQL journal of the configuration (ECT_PG_CONNECTION, --config, --set).</summary>
    public const string PostgresKeyword = "postgresql";

    public Command Build()
    {
        var journal = new Option<string>("--journal")
        {
            Description = "A SQLite journal file, a run directory holding journal.db, `postgresql` (the database of ECT_PG_CONNECTION, " +
                          "or of --config/--set's ect.persistence.connection-string), or a PostgreSQL connection string (Host=...;Database=...).",
            Required = true,
        };
        var config = new Option<string[]>("--config") { Description = "HOCON files layered over the defaults (repeatable), for --journal postgresql." };
        var set = new Option<string[]>("--set") { Description = "KEY=VALUE (repeatable), for --journal postgresql." };
        var cmd = new Command("runs", "List the runs in a journal (SQLite file or PostgreSQL database) with their last state.");
        cmd.Options.Add(journal); cmd.Options.Add(config); cmd.Options.Add(set);
        cmd.SetAction(r => Run(r.GetValue(journal)!, r.GetValue(config) ?? [], r.GetValue(set) ?? []));
        return cmd;
    }

    public static int Run(string journal, IReadOnlyList<string>? configFiles = null, IReadOnlyList<string>? sets = null)
    {
        IReadOnlyList<JournalCatalog.RunSummary> runs;
        JournalCatalog catalog;
        try
        {
            catalog = CatalogFor(journal, configFiles ?? [], sets ?? []);
            catalog.RequireJournalTable();
            runs = catalog.Runs();
        }
        catch (Exception e) when (e is IOException or InvalidDataException or SqliteException or ConfigurationException
                                      or ArgumentException or System.Data.Common.DbException)
        {
            Console.Error.WriteLine($"ect runs: {e.Message}");
            return 1;
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        if (Console.IsOutputRedirected) console.Profile.Width = 320;
        if (runs.Count == 0)
        {
            console.WriteLine($"{catalog.Description}: no runs (the journal is empty).");
            return 0;
        }
        console.WriteLine(catalog.Description);
        var table = new Table().AddColumn("run").AddColumn("id").AddColumn("run directory").AddColumn("phase").AddColumn("step")
            .AddColumn("events").AddColumn("last event").AddColumn("last event time (UTC)").AddColumn("persistence id");
        static string Dash(string s) => s.Length > 0 ? s : "-";
        foreach (var r in runs)
            table.AddRow(Markup.Escape(Dash(r.Name)), Markup.Escape(Dash(r.RunId)),
                Markup.Escape(Dash(r.RunDirectory) + (r.Host.Length > 0 && r.Host != Environment.MachineName ? $" (on {r.Host})" : "")),
                Markup.Escape(r.IsRun ? r.Phase : "(not a run)"), r.IsRun ? r.Step.ToString(CultureInfo.InvariantCulture) : "-",
                r.Events.ToString(CultureInfo.InvariantCulture), Markup.Escape(r.LastManifest),
                r.LastEventUtc?.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) ?? "-", Markup.Escape(r.PersistenceId));
        console.Write(table);
        return 0;
    }

    /// <summary>The journal a --journal value names (see <see cref="Build"/>).</summary>
    public static JournalCatalog CatalogFor(string journal, IReadOnlyList<string> configFiles, IReadOnlyList<string> sets)
    {
        if (journal.Equals(PostgresKeyword, StringComparison.OrdinalIgnoreCase) || journal.Equals("postgres", StringComparison.OrdinalIgnoreCase))
        {
            var c = EctConfiguration.LoadFiles(configFiles, sets.Append("ect.persistence.provider=postgresql"));
            try { c = Postgres.PostgresPersistence.Apply(c); }
            catch (InvalidOperationException e) { throw new ConfigurationException($"--journal {journal}: {e.Message}"); }
            return JournalCatalog.Postgres(c.GetString(Postgres.PostgresPersistence.ConnectionStringPath));
        }
        if (journal.Contains("Host=", StringComparison.OrdinalIgnoreCase) || journal.Contains("Server=", StringComparison.OrdinalIgnoreCase))
            return JournalCatalog.Postgres(journal);
        if (Directory.Exists(journal))
        {
            var file = Path.Combine(journal, DefaultJournalFile);
            if (!File.Exists(file) && File.Exists(Path.Combine(journal, Ect.Actors.Run.RunIdentity.FileName)))
                throw new FileNotFoundException(
                    $"Run directory '{journal}' has no {DefaultJournalFile}: its run is journaled elsewhere (PostgreSQL? `ect runs --journal postgresql`).", file);
            return JournalCatalog.Sqlite(file);
        }
        return JournalCatalog.Sqlite(journal);
    }

    /// <summary>Reads the runs from a SQLite journal file (read-only; the daemon may be writing it).</summary>
    public static IReadOnlyList<JournalCatalog.RunSummary> Read(string file)
    {
        var catalog = JournalCatalog.Sqlite(file);
        catalog.RequireJournalTable();
        return catalog.Runs();
    }
}
