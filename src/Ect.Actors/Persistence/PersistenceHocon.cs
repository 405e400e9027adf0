using Akka.Configuration;

namespace Ect.Actors.Persistence;

/// <summary>Akka.Persistence.Sql journal + snapshot store HOCON for a run (SQLite file in the run dir, or PostgreSQL).</summary>
public static class PersistenceHocon
{
    public static Config For(Config ect, string runDir)
    {
        var provider = ect.GetString("ect.persistence.provider", "sqlite");
        string connection, providerName;
        if (provider == "postgresql")
        {
            connection = ect.GetString("ect.persistence.connection-string", "");
            providerName = "PostgreSQL.15";
        }
        else
        {
            var file = Path.GetFullPath(Path.Combine(runDir, ect.GetString("ect.persistence.sqlite-file", "journal.db")));
            // Pooling off: the file must be released when the process ends or a test deletes the folder.
            connection = $"Data Source={file};Pooling=False";
            providerName = "SQLite.MS";
        }
        var cs = Quote(connection);
        return ConfigurationFactory.ParseString($$"""
            akka.persistence {
              journal {
                plugin = "akka.persistence.journal.sql"
                sql {
                  class = "Akka.Persistence.Sql.Journal.SqlWriteJournal, Akka.Persistence.Sql"
                  connection-string = {{cs}}
                  provider-name = "{{providerName}}"
                  auto-initialize = on
                }
              }
              snapshot-store {
                plugin = "akka.persistence.snapshot-store.sql"
                sql {
                  class = "Akka.Persistence.Sql.Snapshot.SqlSnapshotStore, Akka.Persistence.Sql"
                  connection-string = {{cs}}
                  provider-name = "{{providerName}}"
                  auto-initialize = on
                }
              }
            }
            """);
    }

    internal static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
