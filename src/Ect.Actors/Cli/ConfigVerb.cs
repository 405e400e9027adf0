using System.CommandLine;
using Ect.Actors.Configuration;

namespace Ect.Actors.Cli;

/// <summary>`ect config show [--config FILE]... [--set KEY=VALUE]...`: the resolved configuration, every key with its documentation.</summary>
public sealed class ConfigVerb : ICliVerb
{
    public int Order => 20;

    public Command Build()
    {
        var config = new Option<string[]>("--config") { Description = "HOCON file layered over the defaults (repeatable: later files override earlier ones)." };
        var set = new Option<string[]>("--set") { Description = "KEY=VALUE (repeatable)." };
        var show = new Command("show", "Print the resolved configuration; each key is preceded by its documentation.");
        show.Options.Add(config); show.Options.Add(set);
        show.SetAction(r =>
        {
            try
            {
                var c = EctConfiguration.LoadFiles(r.GetValue(config) ?? [], r.GetValue(set) ?? []);
                Console.Write(EctConfiguration.Show(c));
                RunSettings.From(c, checkData: false);
                return 0;
            }
            catch (ConfigurationException e)
            {
                Console.Error.WriteLine(e.Message);
                return 2;
            }
        });
        var cmd = new Command("config", "Inspect the configuration.");
        cmd.Subcommands.Add(show);
        return cmd;
    }
}
