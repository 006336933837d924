using System.Text;
using ProtoPNet.Service.Hosting;
using ProtoPNet.Service.Tests.Infrastructure;
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
        var console = new CountingWriter();
        using var sink = new BatchedConsoleSink(Lines, () => console);
        for (var i = 0; i < 500; i++) sink.Emit(Event($"event {i}"));

        await Eventually.TrueAsync(() => console.Lines.Length == 500, "the events were not written within 10 s");
        Assert.Equal(Enumerable.Range(0, 500).Select(i => $"event {i}"), console.Lines);
        // One write per batch, not one per event (the events were emitted within a few batch intervals).
        Assert.InRange(console.Writes, 1, 50);
    }

    [Fact]
    public void DisposingWritesWhatIsStillWaiting()
    {
        var console = new CountingWriter();
        var sink = new BatchedConsoleSink(Lines, () => console);
        for (var i = 0; i < 20; i++) sink.Emit(Event($"event {i}"));
        sink.Dispose();
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"event {i}"), console.Lines);
    }

    [Fact]
    public async Task BeyondCapacityEventsAreDroppedAndTheCountIsWritten()
    {
        var console = new CountingWriter { Blocked = new ManualResetEventSlim(false) };
        using var sink = new BatchedConsoleSink(Lines, () => console);
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

    /// <summary>A console that counts its writes, optionally stuck in the first one until released.</summary>
    private sealed class CountingWriter : TextWriter
    {
        private readonly StringBuilder _text = new();
        private int _writes;

        public ManualResetEventSlim? Blocked { get; init; }
        public bool Entered { get; private set; }
        public int Writes => Volatile.Read(ref _writes);

        public string[] Lines
        {
            get
            {
                lock (_text) return _text.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
            }
        }

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(StringBuilder? value)
        {
            Entered = true;
            Blocked?.Wait();
            Interlocked.Increment(ref _writes);
            lock (_text) _text.Append(value);
        }

        public override void Write(char value) => throw new InvalidOperationException("the sink writes whole batches");
    }
}
