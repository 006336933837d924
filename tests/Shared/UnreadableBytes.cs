using System.Buffers;

namespace ProtoPNet.Tests.Shared;

/// <summary>
/// An upload of <paramref name="length"/> bytes that throws when its bytes are read: makes the decoder's own code fail
/// with an exception that is not a refusal, as a file no check foresaw would (such a file, once found, is mended).
/// </summary>
public sealed class UnreadableBytes(int length) : MemoryManager<byte>
{
    public override Span<byte> GetSpan() => throw new InvalidOperationException("these bytes cannot be read");

    public override Memory<byte> Memory => CreateMemory(length);

    public override MemoryHandle Pin(int elementIndex = 0) => throw new InvalidOperationException("these bytes cannot be pinned");

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
    }
}
