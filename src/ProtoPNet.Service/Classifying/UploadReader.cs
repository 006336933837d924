using System.Buffers;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Classifying;

/// <summary>
/// Reads uploaded image files from a request, never holding more than the byte limit per image in memory, and taking
/// every byte it holds from the service's <see cref="UploadBudget"/> first: multipart/form-data file fields named
/// <c>image</c>, or a raw body with an image content type.
/// </summary>
public static class UploadReader
{
    public const string FieldName = "image";

    /// <summary>Reads the request's images; throws <see cref="ProblemException"/> for a request that holds none or too much.</summary>
    public static async Task<IReadOnlyList<ReadOnlyMemory<byte>>> ReadAsync(HttpRequest request, ImageLimits limits, int maxImages,
        UploadBudget.Hold held, CancellationToken cancellationToken)
    {
        // This request's own body limit: the images it may hold plus room for multipart headers, so Kestrel stops
        // reading early instead of spooling an oversized body.
        var bodyLimit = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (bodyLimit is { IsReadOnly: false }) bodyLimit.MaxRequestBodySize = limits.MaxBytes * maxImages + 1024 * 1024;
        try
        {
            if (request.HasFormContentType)
            {
                return await ReadMultipartAsync(request, limits, maxImages, held, cancellationToken);
            }
            if (ImageDecoder.IsAcceptedContentType(request.ContentType))
            {
                return [await ReadRawBodyAsync(request, limits, held, cancellationToken)];
            }
        }
        catch (InvalidDataException exception) when (exception.Message.Contains("length limit", StringComparison.OrdinalIgnoreCase))
        {
            throw new ProblemException(ProblemCatalog.ImageTooLarge, $"A part of the multipart body is larger than the limit of {limits.MaxBytes} bytes per image.");
        }
        catch (InvalidDataException exception)
        {
            throw new ProblemException(ProblemCatalog.ImageNotDecodable, $"The multipart body cannot be read: {exception.Message}");
        }
        catch (BadHttpRequestException exception) when (exception.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw new ProblemException(ProblemCatalog.ImageTooLarge, $"The request body is larger than the server's limit: {exception.Message}");
        }

        if (string.IsNullOrWhiteSpace(request.ContentType))
        {
            throw new ProblemException(ProblemCatalog.ImageMissing,
                "The request has no Content-Type and no image: send multipart/form-data with a file field 'image', or a raw image body with its image/* content type.");
        }
        throw new ProblemException(ProblemCatalog.UnsupportedMediaType,
            $"Content-Type '{request.ContentType}' is not accepted: send multipart/form-data with a file field 'image', or a raw body of type {string.Join(", ", ImageDecoder.AcceptedContentTypes)}.");
    }

    private static async Task<IReadOnlyList<ReadOnlyMemory<byte>>> ReadMultipartAsync(HttpRequest request, ImageLimits limits, int maxImages,
        UploadBudget.Hold held, CancellationToken cancellationToken)
    {
        // The form spools its files to disk as the body arrives (64 KiB each in memory), so a slow upload holds no budget;
        // the files are taken together once read, before they are copied into memory (413 against 503 whatever their order).
        var form = await request.ReadFormAsync(new FormOptions
        {
            MultipartBodyLengthLimit = limits.MaxBytes,
            ValueCountLimit = maxImages + 64,
            MultipartHeadersLengthLimit = 16 * 1024,
        }, cancellationToken);
        var files = form.Files.GetFiles(FieldName);
        if (files.Count == 0)
        {
            var others = form.Files.Select(f => f.Name).Concat(form.Keys).Distinct().ToArray();
            throw new ProblemException(ProblemCatalog.ImageMissing,
                $"The multipart body has no file field named '{FieldName}'" + (others.Length > 0 ? $" (it has: {string.Join(", ", others)})." : "."));
        }
        if (files.Count > maxImages)
        {
            throw new ProblemException(ProblemCatalog.TooManyImages, $"The request holds {files.Count} images; the limit is {maxImages}.");
        }
        held.Add(files.Sum(file => file.Length));
        var images = new List<ReadOnlyMemory<byte>>(files.Count);
        foreach (var file in files)
        {
            if (file.Length > limits.MaxBytes)
            {
                throw new ProblemException(ProblemCatalog.ImageTooLarge, $"The image '{file.FileName}' has {file.Length} bytes; the limit is {limits.MaxBytes} bytes.");
            }
            var bytes = new byte[file.Length];
            await using var stream = file.OpenReadStream();
            await stream.ReadExactlyAsync(bytes, cancellationToken);
            images.Add(bytes);
        }
        return images;
    }

    private static async Task<ReadOnlyMemory<byte>> ReadRawBodyAsync(HttpRequest request, ImageLimits limits, UploadBudget.Hold held,
        CancellationToken cancellationToken)
    {
        if (request.ContentLength > limits.MaxBytes)
        {
            throw new ProblemException(ProblemCatalog.ImageTooLarge, $"The image has {request.ContentLength} bytes; the limit is {limits.MaxBytes} bytes.");
        }
        if (request.ContentLength == 0) throw EmptyBody();
        // A declared length: read straight into an array of that size (no intermediate copy, nothing to zero twice).
        if (request.ContentLength is { } declared)
        {
            held.Add(declared);
            var bytes = new byte[declared];
            // A body that ends early fails in Kestrel (a 400); one that goes on past its length cannot happen in HTTP/1.1.
            await request.Body.ReadExactlyAsync(bytes, cancellationToken);
            return bytes;
        }
        // Chunked: grow as the chunks come, up to the limit, through one pooled chunk buffer.
        using var buffer = new MemoryStream();
        var chunk = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (true)
            {
                var read = await request.Body.ReadAsync(chunk, cancellationToken);
                if (read == 0) break;
                if (buffer.Length + read > limits.MaxBytes)
                {
                    throw new ProblemException(ProblemCatalog.ImageTooLarge, $"The image is larger than the limit of {limits.MaxBytes} bytes.");
                }
                // The buffer's capacity is what it holds: taken before it grows (doubling, as MemoryStream grows).
                if (buffer.Length + read > buffer.Capacity)
                {
                    var capacity = (int)Math.Max(buffer.Length + read, Math.Min(2L * buffer.Capacity, Math.Min(limits.MaxBytes, Array.MaxLength)));
                    held.Add(capacity - buffer.Capacity);
                    buffer.Capacity = capacity;
                }
                buffer.Write(chunk, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
        if (buffer.Length == 0) throw EmptyBody();
        return buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
    }

    private static ProblemException EmptyBody() => new(ProblemCatalog.ImageMissing, "The request body is empty: it holds no image.");

    /// <summary>The media type without parameters, for logs and errors.</summary>
    public static string? MediaType(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var parsed) ? parsed.MediaType.Value : contentType;
}
