using System.Diagnostics;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Preprocessing;

namespace ProtoPNet.Inference.Explanation;

/// <summary>The outcome for one image of a batch: a classification, or why the image was rejected.</summary>
public sealed record BatchItemOutcome(Classification? Classification, ImageRejectedException? Rejection);

/// <summary>The whole data flow for uploaded images: decode, preprocess, run the network once, explain.</summary>
public sealed class Classifier(ImageDecoder decoder)
{
    public ImageDecoder Decoder => decoder;

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
        var decoded = new DecodedImage?[images.Count];
        var rejections = new ImageRejectedException?[images.Count];
        var session = bundle.Session;
        var buffer = session.RentBuffer(images.Count);
        try
        {
            var decodeWatch = Stopwatch.StartNew();
            var rows = new List<int>(images.Count);
            for (var i = 0; i < images.Count; i++)
            {
                try
                {
                    decoded[i] = decoder.Decode(images[i]);
                    InputTensorWriter.Write(decoded[i]!.Pixels, bundle.Manifest.Input, buffer, rows.Count * session.ImageElementCount);
                    rows.Add(i);
                }
                catch (ImageRejectedException rejection)
                {
                    rejections[i] = rejection;
                }
            }
            var decodeMs = decodeWatch.Elapsed.TotalMilliseconds / Math.Max(1, images.Count);

            var results = new BatchItemOutcome[images.Count];
            for (var i = 0; i < images.Count; i++)
            {
                if (rejections[i] is not null) results[i] = new BatchItemOutcome(null, rejections[i]);
            }
            if (rows.Count == 0) return results;

            var inferenceWatch = Stopwatch.StartNew();
            using var outputs = session.Run(buffer, rows.Count);
            var inferenceMs = inferenceWatch.Elapsed.TotalMilliseconds / rows.Count;

            for (var row = 0; row < rows.Count; row++)
            {
                var index = rows[row];
                var image = decoded[index]!;
                var explainWatch = Stopwatch.StartNew();
                var (prediction, topClasses, explanation) = Explainer.Explain(bundle, outputs, row, image, options);
                var explainMs = explainWatch.Elapsed.TotalMilliseconds;
                var timings = new StageTimings(decodeMs, inferenceMs, explainMs, total.Elapsed.TotalMilliseconds);
                results[index] = new BatchItemOutcome(
                    new Classification(image.Width, image.Height, prediction, topClasses, explanation, timings), null);
            }
            return results;
        }
        finally
        {
            Runtime.BundleSession.ReturnBuffer(buffer);
            foreach (var image in decoded) image?.Dispose();
        }
    }
}
