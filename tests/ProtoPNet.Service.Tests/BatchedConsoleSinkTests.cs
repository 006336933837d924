using System.Text;
using ProtoPNet.Service.Hosting;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;
using Serilog.Events;
using Serilog.Formatting.Display;
using Serilog.Parsing;

namespace ProtoPNet.Service.Tests;

/// <summary>The console is written in batches from the background: in order, bounded, and nothing waiting is lost on dispose.</summary>
public class BatchedConsoleSinkTests
{
    private static readonly MessageTemplateTextFormatter Lines = new("{Message}{NewLine}", System.Globalization.CultureInfo.InvariantCulture);

    private static LogEvent Event(string text) =>
        new(DateTimeOffset.Now, LogEventLevel.Information, null, new MessageTemplateParser().Parse(text), []);

    [Fact]
    public async Task EventsAreWrittenInOrderAFewWritesForMany()
    {
        var console = new CountingStream();
        using var sink = new BatchedConsoleSink(Lines, console);
        for (var i = 0; i < 500; i++) sink.Emit(Event($"event {i}"));

        await Eventually.TrueAsync(() => console.Lines.Length == 500, "the events were not written within 10 s");
        Assert.Equal(Enumerable.Range(0, 500).Select(i => $"event {i}"), console.Lines);
        // One write per batch, not one per event (the events were emitted within a few batch intervals).
        Assert.InRange(console.Writes, 1, 50);
    }

    [Fact]
    public void DisposingWritesWhatIsStillWaiting()
    {
        var console = new CountingStream();
        var sink = new BatchedConsoleSink(Lines, console);
        for (var i = 0; i < 20; i++) sink.Emit(Event($"event {i}"));
        sink.Dispose();
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"event {i}"), console.Lines);
    }

    [Fact]
    public async Task BeyondCapacityEventsAreDroppedAndTheCountIsWritten()
    {
        var console = new CountingStream { Blocked = new ManualResetEventSlim(false) };
        using var sink = new BatchedConsoleSink(Lines, console);
        sink.Emit(Event("first"));
        // The first batch is being written (and the console is stuck): what comes now waits, up to the capacity.
        await Eventually.TrueAsync(() => console.Entered, "the first batch was not written within 10 s");
        for (var i = 0; i < BatchedConsoleSink.Capacity + 5; i++) sink.Emit(Event($"event {i}"));
        Assert.Equal(5, sink.Dropped);

        console.Blocked.Set();
        await Eventually.TrueAsync(() => console.Lines.Length == BatchedConsoleSink.Capacity + 2, "the waiting events and the count were not written within 10 s");
        Assert.Equal("first", console.Lines[0]);
        Assert.Equal($"event {BatchedConsoleSink.Capacity - 1}", console.Lines[^2]);
        Assert.Equal($"5 log events were dropped: more than {BatchedConsoleSink.Capacity} waited for the console.", console.Lines[^1]);
    }

    [Fact]
    public async Task TextOutsideAsciiArrivesWholeInOneWrite()
    {
        // Non-ASCII letters and a character outside the BMP (a surrogate pair), in a batch long enough to span several of
        // the text builder's chunks.
        var console = new CountingStream();
        using var sink = new BatchedConsoleSink(Lines, console);
        var lines = Enumerable.Range(0, 300).Select(i => $"Größe {i}: 👕 ✓").ToArray();
        foreach (var line in lines) sink.Emit(Event(line));

        await Eventually.TrueAsync(() => console.Lines.Length == lines.Length, "the events were not written within 10 s");
        Assert.Equal(lines, console.Lines);
        Assert.InRange(console.Writes, 1, 50);
    }

    /// <summary>A console stream that counts its writes (each would be one system call), optionally stuck in the first one until released.</summary>
    private sealed class CountingStream : Stream
    {
        private readonly MemoryStream _bytes = new();
        private int _writes;

        public ManualResetEventSlim? Blocked { get; init; }
        public bool Entered { get; private set; }
        public int Writes => Volatile.Read(ref _writes);

        public string[] Lines
        {
            get
            {
                lock (_bytes) return Encoding.UTF8.GetString(_bytes.ToArray()).Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
            }
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            Entered = true;
            Blocked?.Wait();
            Interlocked.Increment(ref _writes);
            lock (_bytes) _bytes.Write(buffer, offset, count);
        }

        public override void WriteByte(byte value) => throw new InvalidOperationException("the sink writes whole batches");
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

/// <summary>The service as started writes its request log to standard output, line by line, non-ASCII intact.</summary>
[Collection(BundlesCollection.Name)]
public class ConsoleLogTests(TrainerBundles bundles)
{
    [Fact]
    public async Task TheRequestLogReachesStandardOutput()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"));

        // A model name with non-ASCII letters (not a valid name: 400): the log line carries the path, decoded, intact.
        for (var i = 0; i < 3; i++) await service.Client.GetAsync("/health/live");
        await service.Client.GetAsync("/models/gr%C3%B6%C3%9Fe");
        await Eventually.TrueAsync(() => service.Output.Count(l => l.Contains("HTTP GET /health/live responded 200")) == 3,
            "three /health/live lines were not written within 10 s:\n" + string.Join('\n', service.Output));
        await Eventually.TrueAsync(() => service.Output.Any(l => l.Contains("HTTP GET /models/größe responded 400")),
            "the 400's line was not written within 10 s:\n" + string.Join('\n', service.Output));
    }
}
