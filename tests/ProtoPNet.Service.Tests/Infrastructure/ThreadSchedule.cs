namespace ProtoPNet.Service.Tests.Infrastructure;

/// <summary>
/// What Linux's scheduler says of one thread (/proc/.../schedstat): how long it has run on a CPU, and how long it has
/// waited, runnable, for one. On a busy 2-core machine a thread that is ready to go on can wait hundreds of ms for a
/// CPU: a timed wait in a test then says more about the machine than about the code. Linux only (the service's tests
/// run there).
/// </summary>
public readonly record struct ThreadSchedule(TimeSpan Ran, TimeSpan WaitedForCpu)
{
    /// <summary>The calling thread's.</summary>
    public static ThreadSchedule OfThisThread() => Read("/proc/thread-self/schedstat");

    /// <summary>The thread of process <paramref name="processId"/> named <paramref name="name"/> (its comm); throws if it has none or several.</summary>
    public static string PathOf(int processId, string name)
    {
        var threads = Directory.GetDirectories($"/proc/{processId}/task")
            .Where(task => File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n') == name)
            .ToArray();
        return threads.Length == 1
            ? Path.Combine(threads[0], "schedstat")
            : throw new InvalidOperationException($"process {processId} has {threads.Length} threads named '{name}', not one");
    }

    /// <summary>The schedule of the thread whose schedstat file is <paramref name="path"/> (from <see cref="PathOf"/>).</summary>
    public static ThreadSchedule Read(string path)
    {
        // "<ns on a CPU> <ns runnable, waiting for one> <time slices>"
        var fields = File.ReadAllText(path).Split(' ');
        return new ThreadSchedule(TimeSpan.FromTicks(long.Parse(fields[0]) / 100), TimeSpan.FromTicks(long.Parse(fields[1]) / 100));
    }

    public static ThreadSchedule operator -(ThreadSchedule later, ThreadSchedule earlier) =>
        new(later.Ran - earlier.Ran, later.WaitedForCpu - earlier.WaitedForCpu);
}
