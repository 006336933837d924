using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Classifying;

/// <summary>
/// Reads uploaded image files from a request, never holding more than the byte limit per image in memory, and taking
/// every byte it holds from the service's <see cref="BufferBudget"/> first: multipart/form-data file fields named
/// <c>image</c>, or a raw body with an image content type.
/// </summary>
public static class UploadReader
{
    public const string FieldName = "image";

    /// <summary>Reads the request's images; throws <see cref="ProblemException"/> for a request that holds none or too much.</summary>
    public static async Task<IReadOnlyList<ReadOnlyMemory<byte>>> ReadAsync(HttpRequest request, ImageLimits limits, int maxImages,
        BufferBudget.Hold held, CancellationToken cancellationToken)
    {
        // This request's own body limit: the images it may hold plus room for multipart headers, so Kestrel stops
        // reading early instead of spooling an oversized body.
        var bodyLimit = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (bodyLimit is { IsReadOnly: false }) bodyLimit.MaxRequestBodySize = limits.MaxBytes * maxImages + 1024 * 1024;
        try
        {
            if (IsMultipart(request.ContentType))
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
        catch (IOException exception) when (exception is not BadHttpRequestException && IsMultipart(request.ContentType))
        {
            // The multipart reader meets the end of the body before the closing boundary: a cut-off upload, or a body that is not multipart at all.
            throw new ProblemException(ProblemCatalog.ImageNotDecodable,
                $"The multipart body cannot be read: it ends before its closing boundary '--{Boundary(request.ContentType)}--' (cut short, or not multipart/form-data).");
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
        BufferBudget.Hold held, CancellationToken cancellationToken)
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

    private static async Task<ReadOnlyMemory<byte>> ReadRawBodyAsync(HttpRequest request, ImageLimits limits, BufferBudget.Hold held,
        CancellationToken cancellationToken)
    {
        var bytes = await BufferedBody.ReadAsync(request, limits.MaxBytes, held, () => new ProblemException(ProblemCatalog.ImageTooLarge,
            request.ContentLength is { } declared
                ? $"The image has {declared} bytes; the limit is {limits.MaxBytes} bytes."
                : $"The image is larger than the limit of {limits.MaxBytes} bytes."), cancellationToken);
        return bytes.Length > 0 ? bytes : throw EmptyBody();
    }

    private static ProblemException EmptyBody() => new(ProblemCatalog.ImageMissing, "The request body is empty: it holds no image.");

    /// <summary>Whether the body is multipart/form-data (a URL-encoded form, which holds no files, is not).</summary>
    private static bool IsMultipart(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var parsed) && parsed.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase);

    private static string Boundary(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var parsed) ? HeaderUtilities.RemoveQuotes(parsed.Boundary).Value ?? "" : "";

    /// <summary>The media type without parameters, for logs and errors.</summary>
    public static string? MediaType(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var parsed) ? parsed.MediaType.Value : contentType;
}
