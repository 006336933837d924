namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether a GIF's blocks lead to its first image as Pillow (the trainer's decoder) reads them: after the header and
/// global colour table, extension blocks (introduced by 21, then a label and sub-blocks ending with a zero length) and
/// stray bytes are passed over up to the first image descriptor (2C). ImageSharp reads extensions differently (a
/// graphic control extension by a fixed length, an unknown label not at all) and so can come upon a 2C byte inside
/// compressed data and decode garbage from it, where Pillow reaches the trailer (3B) or the file's end first and refuses
/// the file; Pillow also refuses a graphic control extension too short for its fields, an application extension
/// (before the first image) without data, and an LZW minimum code size above 11. A damaged upload was classified while
/// the trainer could not read it.
/// </summary>
public static class GifBlocks
{
    private const byte Extension = 0x21, ImageDescriptor = 0x2C, Trailer = 0x3B;
    private const byte GraphicControl = 0xF9, Comment = 0xFE, Application = 0xFF, PlainText = 0x01;

    /// <summary>GIF's LZW codes have at most 12 bits: a minimum code size above 11 starts beyond them.</summary>
    private const int MaxMinimumCodeSize = 11;

    /// <summary>
    /// What keeps Pillow from the first image, or from decoding it (one sentence), or null: the blocks up to it, and its
    /// LZW minimum code size (Pillow refuses one above 11, "broken data stream" or "codec configuration error";
    /// ImageSharp decoded garbage from it; one of 0 ImageSharp decodes to black where Pillow gives colour 0).
    /// </summary>
    public static string? FindCorruption(ReadOnlySpan<byte> file)
    {
        if (WalkToFirstImage(file, out var descriptor) is { } stopped) return stopped;
        if (descriptor < 0 || descriptor + 10 > file.Length) return null;
        var flags = file[(int)descriptor + 9];
        var codeSize = descriptor + 10 + ColourTableBytes(flags);
        if (codeSize >= file.Length) return null;   // cut short: the completeness check says so
        var bits = file[(int)codeSize];
        if (bits > MaxMinimumCodeSize) return $"its first image's LZW minimum code size is {bits}, beyond GIF's codes of at most 12 bits (the most it can be is {MaxMinimumCodeSize})";
        // Pillow reads a size of 0 (1-bit codes, every pixel colour 0); ImageSharp decodes no colour from it, only black.
        return bits == 0 ? "its first image's LZW minimum code size is 0, below the 2 GIF allows (the decoder here reads no colour from it)" : null;
    }

    /// <summary>Where the first image descriptor (2C) lies, reached as Pillow reaches it; null when it is not reached.</summary>
    public static int? FirstImageDescriptor(ReadOnlySpan<byte> file) =>
        WalkToFirstImage(file, out var descriptor) is null && descriptor >= 0 ? (int)descriptor : null;

    /// <summary>
    /// Where the first image descriptor lies and the image's transparent index as Pillow takes it from the graphic
    /// control extensions before it (null for none); null when Pillow does not reach the image.
    /// </summary>
    public static (int Descriptor, byte? TransparentIndex)? FirstImage(ReadOnlySpan<byte> file)
    {
        var prelude = new Prelude();
        return WalkToFirstImage(file, out var descriptor, prelude) is null && descriptor >= 0 ? ((int)descriptor, prelude.TransparentIndex) : null;
    }

    /// <summary>
    /// The file as ImageSharp reads what Pillow reads before the first image; the file itself when it is regular there,
    /// or when Pillow does not reach its first image. Where it is not regular (stray bytes or extensions of a label GIF
    /// does not define, which Pillow passes over and ImageSharp refuses, "No data"; a graphic control extension of
    /// another size than 4 bytes or with more data, which ImageSharp reads at a fixed size and so swallows the image or
    /// stops; more than one of them; an application extension of another form than the standard's), what lies between
    /// the colour table and the image is written anew: one graphic control extension in its standard form, with what
    /// Pillow takes from them all (the last one's flags and delay, the last transparent one's index: Pillow keeps a
    /// transparent index once given), and nothing else (comments and application data change no pixel).
    /// </summary>
    public static ReadOnlyMemory<byte> WithoutStrayBlocks(ReadOnlyMemory<byte> bytes)
    {
        var prelude = new Prelude();
        if (WalkToFirstImage(bytes.Span, out var descriptor, prelude) is not null || descriptor < 0 || !prelude.Irregular) return bytes;
        var start = ColourTableEnd(bytes.Span);
        var control = prelude.Control;
        var kept = new byte[start + (control is null ? 0 : control.Length) + (bytes.Length - (int)descriptor)];
        bytes.Span[..start].CopyTo(kept);
        control?.CopyTo(kept, start);
        bytes.Span[(int)descriptor..].CopyTo(kept.AsSpan(start + (control?.Length ?? 0)));
        return kept;
    }

    /// <summary>What the walk to the first image saw between the colour table and it, as Pillow reads it.</summary>
    private sealed class Prelude
    {
        private int _controls;
        private byte _flags, _transparentIndex;
        private (byte Low, byte High) _delay;
        private bool _transparent;

        /// <summary>Whether ImageSharp would read it otherwise than Pillow does (see <see cref="WithoutStrayBlocks"/>).</summary>
        public bool Irregular { get; set; }

        /// <summary>A graphic control extension's fields (its first sub-block), as Pillow takes them: the flags and delay of the last, the index of the last transparent one.</summary>
        public void AddControl(ReadOnlySpan<byte> fields)
        {
            if (++_controls > 1) Irregular = true;
            (_flags, _delay) = (fields[0], (fields[1], fields[2]));
            if ((fields[0] & 1) != 0) (_transparent, _transparentIndex) = (true, fields[3]);
        }

        /// <summary>The transparent index Pillow keeps (the last one given), or null when none was.</summary>
        public byte? TransparentIndex => _transparent ? _transparentIndex : null;

        /// <summary>The one graphic control extension, in the standard's form (introducer, label, 4 bytes of fields, terminator), or null for none.</summary>
        public byte[]? Control => _controls == 0 ? null :
            [Extension, GraphicControl, 4, (byte)(_transparent ? _flags | 1 : _flags), _delay.Low, _delay.High, _transparent ? _transparentIndex : (byte)0, 0];
    }

    /// <summary>The bytes of the colour table that <paramref name="flags"/> (the screen's or an image's) announce: 3 per colour, 2^(n+1) colours; none without its flag.</summary>
    internal static int ColourTableBytes(byte flags) => (flags & 0x80) != 0 ? 3 << ((flags & 7) + 1) : 0;

    private static int ColourTableEnd(ReadOnlySpan<byte> file) => 13 + ColourTableBytes(file[10]);

    /// <summary>
    /// The blocks up to the first image descriptor: why Pillow stops before it (one sentence), or null and where it lies
    /// (-1 for no GIF); <paramref name="prelude"/>, when given, learns of stray bytes and undefined extensions passed
    /// over, and gets the graphic control extensions in their standard form.
    /// </summary>
    private static string? WalkToFirstImage(ReadOnlySpan<byte> file, out long descriptor, Prelude? prelude = null)
    {
        descriptor = -1;
        if (file.Length < 13 || !(file.StartsWith("GIF87a"u8) || file.StartsWith("GIF89a"u8))) return null;
        long position = ColourTableEnd(file);
        while (true)
        {
            if (position >= file.Length) return $"its blocks reach the end of the file (byte {file.Length}) before any image";
            var at = position;
            var introducer = file[(int)position++];
            if (introducer == Trailer) return $"its blocks reach the trailer (3B) at byte {at} before any image";
            if (introducer == ImageDescriptor)
            {
                descriptor = at;
                return null;   // a descriptor cut short is the completeness check's
            }
            if (introducer != Extension)
            {
                if (prelude is not null) prelude.Irregular = true;   // a stray byte, passed over as Pillow does
                continue;
            }
            if (position >= file.Length) return $"its extension at byte {at} ends the file before its label";
            var label = file[(int)position++];
            var first = SubBlock(file, ref position, out var hasFirst);
            if (label == GraphicControl)
            {
                // Pillow reads the flags, the delay (bytes 1-2) and, when the flags say so, the transparent index (byte 3).
                var transparent = first.Length > 0 && (first[0] & 1) != 0;
                if (first.Length < (transparent ? 4 : 3)) return $"its graphic control extension at byte {at} has {first.Length} bytes of fields, fewer than {(transparent ? 4 : 3)}";
                prelude?.AddControl(first);
                // ImageSharp reads 4 bytes of fields and a terminator, whatever the extension says.
                if (prelude is not null && (first.Length != 4 || position >= file.Length || file[(int)position] != 0)) prelude.Irregular = true;
            }
            else if (label == Comment)
            {
                // Pillow reads a comment's sub-blocks up to the zero length, and no further.
                if (first.IsEmpty) continue;
            }
            else if (label == Application)
            {
                if (!hasFirst) return $"its application extension at byte {at} has no identifier";
                // The standard's form: an 11-byte identifier, then sub-blocks (NETSCAPE2.0's: one of 3 bytes).
                if (first.Length != 11 && prelude is not null) prelude.Irregular = true;
                if (first.StartsWith("NETSCAPE2.0"u8))
                {
                    var loop = SubBlock(file, ref position, out var hasLoop);
                    if (!hasLoop) return $"its NETSCAPE2.0 application extension at byte {at} has no loop data";
                    if (prelude is not null && (loop.Length != 3 || position >= file.Length || file[(int)position] != 0)) prelude.Irregular = true;
                }
            }
            // Then sub-blocks up to a zero length; Pillow reads on even after a first one of zero length, as this does.
            while (!SubBlock(file, ref position, out _).IsEmpty)
            {
            }
            if (label is not (GraphicControl or Comment or Application or PlainText) && prelude is not null) prelude.Irregular = true;
        }
    }

    /// <summary>
    /// The data of the sub-block at <paramref name="position"/>, and moves past it; <paramref name="present"/> is false for
    /// a zero length or the file's end (Pillow's None), and the data may be cut short by the file's end.
    /// </summary>
    private static ReadOnlySpan<byte> SubBlock(ReadOnlySpan<byte> file, ref long position, out bool present)
    {
        present = false;
        if (position >= file.Length) return default;
        var length = file[(int)position++];
        if (length == 0) return default;
        present = true;
        var start = Math.Min(position, file.Length);
        position += length;
        return file[(int)start..(int)Math.Min(position, file.Length)];
    }
}
