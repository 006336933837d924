using System.Diagnostics;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Inference.Explanation;

/// <summary>The outcome for one image of a batch: a classification, or why the image was rejected.</summary>
public sealed record BatchItemOutcome(Classification? Classification, ImageRejectedException? Rejection);

/// <summary>
/// Uploaded images decoded and written into one pooled [N, C, H, W] input buffer (the accepted ones, in order), ready
/// for a network run; rejected images are kept per item. Dispose it to return the buffer and release the pixels.
/// </summary>
public sealed class PreparedImages : IDisposable
{
    private readonly DecodedImage?[] _decoded;
    private readonly int[] _rows;
    private readonly bool[] _inverted;
    private float[]? _input;

    internal PreparedImages(DecodedImage?[] decoded, ImageRejectedException?[] rejections, int[] rows, bool[] inverted,
        float[] input, double decodeMs)
    {
        _decoded = decoded;
        Rejections = rejections;
        _rows = rows;
        _inverted = inverted;
        _input = input;
        DecodeMs = decodeMs;
    }

    /// <summary>How many images were uploaded.</summary>
    public int Count => _decoded.Length;

    /// <summary>Rows of <see cref="Input"/>: the images that decoded.</summary>
    public int RowCount => _rows.Length;

    /// <summary>The accepted images in [N, C, H, W] layout, in its first <c>RowCount x ImageElementCount</c> elements.</summary>
    public float[] Input => _input ?? throw new ObjectDisposedException(nameof(PreparedImages));

    public IReadOnlyList<ImageRejectedException?> Rejections { get; }

    /// <summary>Decoding and tensor writing time per image.</summary>
    public double DecodeMs { get; }

    /// <summary>Which uploaded image a row of the input holds.</summary>
    public int ImageOfRow(int row) => _rows[row];

    /// <summary>Whether the bundle's contrast step inverted the image of a row (a light-ground photo).</summary>
    public bool InvertedAt(int row) => _inverted[row];

    public DecodedImage DecodedAt(int image) => _decoded[image] ?? throw new InvalidOperationException($"image {image} was rejected");


    /// <summary>Returns the input buffer to its pool once the network has run; the pixels stay to draw on.</summary>
    public void ReturnInput()
    {
        var input = Interlocked.Exchange(ref _input, null);
        if (input is not null) BundleSession.ReturnBuffer(input);
    }

    public void Dispose()
    {
        ReturnInput();
        foreach (var image in _decoded) image?.Dispose();
    }
}

/// <summary>
/// The whole data flow for uploaded images: decode and preprocess (<see cref="Prepare"/>), run the network, explain
/// (<see cref="Explain"/>). The service runs the network through its batcher between the two; <see cref="ClassifyBatch"/>
/// does all three in one call (the benchmarks' in-process pipeline, without batcher or HTTP).
/// </summary>
public sealed class Classifier(ImageDecoder decoder)
{
    /// <summary>The most pixels an image is kept at to draw on (heatmaps, the card): larger ones are scaled down to it.</summary>
    public const long MaxDrawingPixels = 4_000_000;

    /// <summary>Classifies one image; throws <see cref="ImageRejectedException"/> for bad input.</summary>
    public Classification Classify(ModelBundle bundle, ReadOnlyMemory<byte> image, ExplainOptions options)
    {
        var outcome = ClassifyBatch(bundle, [image], options)[0];
        if (outcome.Rejection is not null) throw outcome.Rejection;
        return outcome.Classification!;
    }

    /// <summary>Classifies several images with one network run; bad images are reported per item.</summary>
    public IReadOnlyList<BatchItemOutcome> ClassifyBatch(ModelBundle bundle, IReadOnlyList<ReadOnlyMemory<byte>> images, ExplainOptions options)
    {
        var total = Stopwatch.StartNew();
        using var prepared = Prepare(bundle, images, keptPixels: 0);   // nothing here draws on them
        if (prepared.RowCount == 0) return Explain(bundle, prepared, null, 0, options, 0, total);
        var inferenceWatch = Stopwatch.StartNew();
        using var outputs = bundle.Session.Run(prepared.Input, prepared.RowCount);
        var inferenceMs = inferenceWatch.Elapsed.TotalMilliseconds / prepared.RowCount;
        return Explain(bundle, prepared, outputs, 0, options, inferenceMs, total);
    }

    /// <summary>
    /// Decodes the images and writes the accepted ones into one pooled input buffer; bad images are kept per item.
    /// The pixels are kept to draw heatmaps or a card on, each image scaled down to at most <see cref="MaxDrawingPixels"/>
    /// (<see cref="DecodedImage.ShrinkForDrawing"/>), up to <paramref name="keptPixels"/> for all images together: an
    /// image that would go beyond is refused (too many pixels). Each image's kept size (width, height) is first passed
    /// to <paramref name="reserveKept"/>, which may throw to refuse the whole request (the service charges its memory
    /// budget with what keeping and drawing on the image will hold). With 0 (nothing will draw on them) each image's
    /// pixels are freed as soon as its input is written, so a batch of large images holds one at a time.
    /// </summary>
    public PreparedImages Prepare(ModelBundle bundle, IReadOnlyList<ReadOnlyMemory<byte>> images, long keptPixels = long.MaxValue,
        Action<int, int>? reserveKept = null)
    {
        var preparation = StartPreparation(bundle, images.Count, keptPixels, reserveKept);
        try
        {
            for (var i = 0; i < images.Count; i++) preparation.Add(i, images[i]);
        }
        catch
        {
            preparation.Abandon();
            throw;
        }
        return preparation.Finish();
    }

    /// <summary>
    /// <see cref="Prepare"/> image by image, for a caller that does more between images (the service gives each image of
    /// a batch its own turn on the CPU): <see cref="ImagePreparation.Add"/> each image in order, then
    /// <see cref="ImagePreparation.Finish"/>, or <see cref="ImagePreparation.Abandon"/> when the request fails as a whole.
    /// </summary>
    public ImagePreparation StartPreparation(ModelBundle bundle, int count, long keptPixels, Action<int, int>? reserveKept) =>
        new(decoder, bundle, count, keptPixels, reserveKept);

    /// <summary>The images of one request as they are decoded and written into its input buffer, one at a time.</summary>
    public sealed class ImagePreparation(ImageDecoder decoder, ModelBundle bundle, int count, long keptPixels, Action<int, int>? reserveKept)
    {
        private TimeSpan _decoding;   // the images' own time, not the waits between them
        private readonly DecodedImage?[] _decoded = new DecodedImage?[count];
        private readonly ImageRejectedException?[] _rejections = new ImageRejectedException?[count];
        private readonly float[] _buffer = bundle.Session.RentBuffer(count);
        private readonly List<int> _rows = new(count);
        private readonly List<bool> _inverted = new(count);
        private long _kept;

        /// <summary>Decodes image <paramref name="i"/> and writes it into the buffer; a bad image is kept as its item's rejection.</summary>
        public void Add(int i, ReadOnlyMemory<byte> bytes)
        {
            var started = Stopwatch.GetTimestamp();
            var session = bundle.Session;
            try
            {
                var image = _decoded[i] = decoder.DecodeFor(bytes, bundle.Manifest.Input);
                var drawing = DecodedImage.DrawingSize(image.Decoded.Width, image.Decoded.Height, MaxDrawingPixels);
                var pixels = (long)drawing.Width * drawing.Height;
                if (keptPixels > 0 && _kept + pixels > keptPixels)
                {
                    _decoded[i] = null;
                    image.Dispose();
                    throw new ImageRejectedException(ImageRejection.TooManyPixels,
                        $"The image is drawn on at {drawing.Width}x{drawing.Height} = {pixels} pixels; with the request's other images " +
                        $"that is more than the {keptPixels} pixels one answer draws on. Ask for no heatmaps, or send fewer images.");
                }
                _inverted.Add(InputTensorWriter.Write(image.Pixels, bundle.Manifest.Input, _buffer, _rows.Count * session.ImageElementCount));
                _rows.Add(i);
                if (keptPixels > 0)
                {
                    reserveKept?.Invoke(drawing.Width, drawing.Height);
                    image.ShrinkForDrawing(MaxDrawingPixels);
                    _kept += pixels;
                }
                else
                {
                    image.ReleasePixels();
                }
            }
            catch (ImageRejectedException rejection)
            {
                _rejections[i] = rejection;
            }
            finally
            {
                _decoding += Stopwatch.GetElapsedTime(started);
            }
        }

        /// <summary>The prepared images, the buffer handed over with them.</summary>
        public PreparedImages Finish() => new(_decoded, _rejections, _rows.ToArray(), _inverted.ToArray(), _buffer,
            _decoding.TotalMilliseconds / Math.Max(1, count));

        /// <summary>A request refused as a whole (its memory budget, a fault): the buffer goes back and the images are freed.</summary>
        public void Abandon()
        {
            BundleSession.ReturnBuffer(_buffer);
            foreach (var image in _decoded) image?.Dispose();
        }
    }

    /// <summary>
    /// Explains every accepted image from the network outputs, whose rows <paramref name="firstRow"/> onwards hold the
    /// prepared images' rows in order (a batch may hold other requests' rows before them).
    /// </summary>
    public IReadOnlyList<BatchItemOutcome> Explain(ModelBundle bundle, PreparedImages prepared, NetworkOutputs? outputs, int firstRow,
        ExplainOptions options, double inferenceMs, Stopwatch total)
    {
        var results = new BatchItemOutcome[prepared.Count];
        for (var i = 0; i < prepared.Count; i++)
        {
            if (prepared.Rejections[i] is { } rejection) results[i] = new BatchItemOutcome(null, rejection);
        }
        if (prepared.RowCount == 0) return results;
        ArgumentNullException.ThrowIfNull(outputs);
        for (var row = 0; row < prepared.RowCount; row++)
        {
            var index = prepared.ImageOfRow(row);
            var image = prepared.DecodedAt(index);
            var explainWatch = Stopwatch.StartNew();
            var (prediction, topClasses, explanation) = Explainer.Explain(bundle, outputs, firstRow + row, image, options);
            var explainMs = explainWatch.Elapsed.TotalMilliseconds;
            var timings = new StageTimings(prepared.DecodeMs, inferenceMs, explainMs, total.Elapsed.TotalMilliseconds);
            results[index] = new BatchItemOutcome(
                new Classification(image.Width, image.Height, prediction, topClasses, explanation, timings)
                {
                    Unfamiliarity = Unfamiliarity.Of(bundle, outputs.SimilaritiesOf(firstRow + row)),
                    Inverted = prepared.InvertedAt(row),
                    Decoded = image.Decoded,
                }, null);
        }
        return results;
    }
}
