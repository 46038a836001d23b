namespace Ferry.IntegrationTests;

/// <summary>Paths in the source tree and of the built `ferry`.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    /// <summary>The `ferry` assembly built next to the tests (run with `dotnet`).</summary>
    public static string FerryDll { get; } = Path.Combine(AppContext.BaseDirectory, "ferry.dll");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "guest", "build.sh")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("cannot find the source tree (guest/build.sh) above the test directory");
    }
}
