using Ect.Compute.IO;
using FluentAssertions;
using Xunit;

namespace Ect.Compute.Tests.IO;

public class AtomicFileTests
{
    private static string NewDir() => Directory.CreateTempSubdirectory("ect-atomic-").FullName;

    [Fact]
    public void Write_replaces_the_file_whole_and_leaves_no_temporary_file()
    {
        var dir = NewDir();
        var path = Path.Combine(dir, "a.json");
        File.WriteAllText(path, "old");
        AtomicFile.WriteAllText(path, "new");
        File.ReadAllText(path).Should().Be("new");
        Directory.GetFiles(dir).Should().ContainSingle().Which.Should().Be(path);
    }

    [Fact]
    public void A_write_that_throws_keeps_the_old_file_and_removes_its_temporary_file()
    {
        var dir = NewDir();
        var path = Path.Combine(dir, "a.bin");
        File.WriteAllText(path, "old");
        var act = () => AtomicFile.Write(path, fs => { fs.Write([1, 2, 3]); throw new IOException("disk full (simulated)"); });
        act.Should().Throw<IOException>().WithMessage("*simulated*");
        File.ReadAllText(path).Should().Be("old");
        Directory.GetFiles(dir).Should().ContainSingle();
    }

    [Fact]
    public void Commit_without_overwrite_refuses_an_existing_target_and_keeps_both_files()
    {
        var dir = NewDir();
        var (tmp, path) = (Path.Combine(dir, "r.json.tmp"), Path.Combine(dir, "r.json"));
        File.WriteAllText(tmp, "new");
        File.WriteAllText(path, "theirs");
        var act = () => AtomicFile.Commit(tmp, path, overwrite: false);
        act.Should().Throw<IOException>();
        File.ReadAllText(path).Should().Be("theirs");
        File.Exists(tmp).Should().BeTrue("the caller decides what to do with its temporary file");
        AtomicFile.Commit(tmp, path);
        File.ReadAllText(path).Should().Be("new");
        File.Exists(tmp).Should().BeFalse();
    }

    [Fact]
    public void The_temporary_name_ends_in_tmp_beside_the_target_so_start_up_clean_ups_find_it()
    {
        var dir = NewDir();
        var tmp = AtomicFile.TempPathFor(Path.Combine(dir, "run.json"));
        Path.GetDirectoryName(tmp).Should().Be(dir);
        tmp.Should().EndWith(".tmp");
    }
}
