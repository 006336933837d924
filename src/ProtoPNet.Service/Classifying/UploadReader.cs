using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Classifying;

/// <summary>
/// Reads uploaded image files from a request, never holding more than the byte limit per image in memory, and taking
/// every byte it holds from the service's <see cref="BufferBudget"/> first: the parts of a multipart/form-data body named
/// <c>image</c> (other parts are skipped), or a raw body with an image content type.
/// </summary>
public static class UploadReader
{
    public const string FieldName = "image";

    /// <summary>Reads the request's images; throws <see cref="ProblemException"/> for a request that holds none or too much.</summary>
    public static async Task<IReadOnlyList<ReadOnlyMemory<byte>>> ReadAsync(HttpRequest request, ImageLimits limits, int maxImages,
        BufferBudget.Hold held, SpoolBudget spool, CancellationToken cancellationToken)
    {
        // This request's own body limit: the images it may hold plus room for multipart headers, so Kestrel stops
        // reading early instead of spooling an oversized body.
        var bodyLimit = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>();
        var maxBody = limits.MaxBytes * maxImages + 1024 * 1024;
        if (bodyLimit is { IsReadOnly: false }) bodyLimit.MaxRequestBodySize = maxBody;
        try
        {
            if (IsMultipart(request.ContentType))
            {
                if (Boundary(request.ContentType).Length == 0)
                {
                    throw new ProblemException(ProblemCatalog.RequestBodyUnreadable,
                        $"Content-Type '{request.ContentType}' has no boundary (its boundary parameter is missing or empty), so the multipart body's parts cannot be told apart: send e.g. 'multipart/form-data; boundary=x7' (curl -F and HTTP libraries set it themselves).");
                }
                return await ReadMultipartAsync(request, limits, maxImages, held, spool, cancellationToken);
            }
            // 'image/png; x="a' (an unterminated quote) names a type taken, but its header cannot be read: refused below.
            if (ImageDecoder.IsAcceptedContentType(request.ContentType) && MediaTypeHeaderValue.TryParse(request.ContentType, out _))
            {
                return [await ReadRawBodyAsync(request, limits, held, cancellationToken)];
            }
        }
        catch (InvalidDataException exception)
        {
            throw MultipartRefusal(exception, limits);
        }
        catch (BadHttpRequestException exception) when (exception.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw new ProblemException(ProblemCatalog.ImageTooLarge,
                $"The request body is larger than {maxBody} bytes, the most this endpoint reads: {Images(maxImages)} of at most {limits.MaxBytes} bytes, plus 1 MiB for the multipart framing.");
        }
        catch (IOException exception) when (IsStorageFull(exception))
        {
            // The server's problem, not the client's: the spool folder fills with the uploads in flight and empties as
            // they finish.
            throw new ProblemException(ProblemCatalog.UploadSpoolFull,
                $"The folder uploads are spooled to ({TempDirectory()}) is full: this upload cannot be held now. Retry shortly.");
        }
        catch (IOException exception) when (exception is not BadHttpRequestException and not ConnectionResetException
                                            && !ProblemCatalog.IsBrokenFraming(exception) && IsMultipart(request.ContentType))
        {
            // The multipart reader meets the end of the body before the closing boundary: a cut-off upload, or a body that is not multipart at all.
            throw new ProblemException(ProblemCatalog.ImageNotDecodable,
                $"The multipart body cannot be read: it ends before its closing boundary '--{Boundary(request.ContentType)}--' (cut short, or not multipart/form-data).");
        }

        if (string.IsNullOrWhiteSpace(request.ContentType))
        {
            var sentBody = request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0;
            throw new ProblemException(ProblemCatalog.ImageMissing, sentBody
                ? "The request's body has no Content-Type, so it is not read as an image: send a raw image body with its image/* content type (e.g. image/png), or multipart/form-data with a file field 'image'."
                : "The request has no Content-Type and no image: send multipart/form-data with a file field 'image', or a raw image body with its image/* content type.");
        }
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out _))
        {
            // multipart/form-data; boundary="b or image/png; x="a (an unterminated quote): the type is one taken, its header cannot be read.
            throw ProblemCatalog.UnreadableContentType(request.ContentType, "e.g. 'multipart/form-data; boundary=x7' or 'image/png'");
        }
        throw new ProblemException(ProblemCatalog.UnsupportedMediaType,
            $"Content-Type '{request.ContentType}' is not accepted: send multipart/form-data with a file field 'image', or a raw body of type {string.Join(", ", ImageDecoder.AcceptedContentTypes)}.");
    }

    private static async Task<IReadOnlyList<ReadOnlyMemory<byte>>> ReadMultipartAsync(HttpRequest request, ImageLimits limits, int maxImages,
        BufferBudget.Hold held, SpoolBudget spool, CancellationToken cancellationToken)
    {
        // The image parts are spooled to disk as the body arrives (64 KiB each in memory), so a slow upload holds no
        // budget; they are taken together once read, before they are copied into memory (413 against 503 whatever their
        // order). Other parts are skipped unread: the endpoints take no form fields, so those cost no memory.
        var reader = new MultipartReader(Boundary(request.ContentType), request.Body)
        {
            HeadersLengthLimit = 16 * 1024,
            BodyLengthLimit = limits.MaxBytes,
        };
        var spooled = new List<FileBufferingReadStream>();
        using var spooling = spool.Open();   // Images:MaxSpooledBytes, counted as the parts are read
        var imageParts = 0;
        var otherNames = new SortedSet<string>(StringComparer.Ordinal);
        try
        {
            while (await reader.ReadNextSectionAsync(cancellationToken) is { } section)
            {
                var name = FieldNameOf(section);
                // A part named 'image' is the image whether or not it has a filename (curl -F 'image=<photo.png' sends none).
                if (name != FieldName)
                {
                    if (otherNames.Count < 10) otherNames.Add(name ?? "(a part that is not form-data)");
                    await section.Body.DrainAsync(cancellationToken);
                    continue;
                }
                if (++imageParts > maxImages)
                {
                    await section.Body.DrainAsync(cancellationToken);   // counted, not kept: the answer says how many there were
                    continue;
                }
                var buffer = new FileBufferingReadStream(new SpoolBudget.ChargedStream(section.Body, spooling), 64 * 1024, limits.MaxBytes,
                    TempDirectory);
                spooled.Add(buffer);
                await buffer.DrainAsync(cancellationToken);
            }
            if (imageParts == 0)
            {
                throw new ProblemException(ProblemCatalog.ImageMissing,
                    $"The multipart body has no field named '{FieldName}'" + (otherNames.Count > 0 ? $" (it has: {string.Join(", ", otherNames)})." : "."));
            }
            if (imageParts > maxImages)
            {
                throw new ProblemException(ProblemCatalog.TooManyImages, maxImages == 1
                    ? $"The request holds {imageParts} images; this endpoint takes one (POST /classify/batch takes several)."
                    : $"The request holds {imageParts} images; the limit is {maxImages}.");
            }
            held.Add(spooled.Sum(part => part.Length));
            var images = new List<ReadOnlyMemory<byte>>(spooled.Count);
            foreach (var part in spooled)
            {
                var bytes = new byte[part.Length];
                part.Position = 0;
                await part.ReadExactlyAsync(bytes, cancellationToken);
                images.Add(bytes);
            }
            return images;
        }
        finally
        {
            foreach (var part in spooled) await part.DisposeAsync();
        }
    }

    /// <summary>The name of a form-data part, or null for a part that is not form-data.</summary>
    private static string? FieldNameOf(MultipartSection section) =>
        ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
        && disposition.DispositionType.Equals("form-data", StringComparison.OrdinalIgnoreCase)
            ? HeaderUtilities.RemoveQuotes(disposition.Name).Value
            : null;

    /// <summary>Whether writing failed for want of room: ENOSPC or EDQUOT on Linux, ERROR_DISK_FULL or ERROR_HANDLE_DISK_FULL on Windows.</summary>
    public static bool IsStorageFull(IOException exception) =>
        exception is not BadHttpRequestException && (exception.HResult is 28 or 122 || (uint)exception.HResult is 0x80070070 or 0x80070027);

    /// <summary>Where image parts are spooled: ASP.NET Core's own choice for form files (ASPNETCORE_TEMP, else the system's).</summary>
    private static string TempDirectory() => Environment.GetEnvironmentVariable("ASPNETCORE_TEMP") is { Length: > 0 } configured ? configured : Path.GetTempPath();

    private static async Task<ReadOnlyMemory<byte>> ReadRawBodyAsync(HttpRequest request, ImageLimits limits, BufferBudget.Hold held,
        CancellationToken cancellationToken)
    {
        var bytes = await BufferedBody.ReadAsync(request, limits.MaxBytes, held, () => new ProblemException(ProblemCatalog.ImageTooLarge,
            request.ContentLength is { } declared
                ? $"The image has {declared} bytes; the limit is {limits.MaxBytes} bytes."
                : $"The image is larger than the limit of {limits.MaxBytes} bytes."), cancellationToken);
        return bytes.Length > 0 ? bytes : throw EmptyBody();
    }

    private static string Images(int count) => count == 1 ? "one image" : $"{count} images";

    /// <summary>The multipart reader's refusal as the problem the client can act on.</summary>
    private static ProblemException MultipartRefusal(InvalidDataException exception, ImageLimits limits) =>
        exception.Message.StartsWith("Multipart body length limit", StringComparison.Ordinal)
            ? new ProblemException(ProblemCatalog.ImageTooLarge, $"A part of the multipart body is larger than the limit of {limits.MaxBytes} bytes per image.")
            : new ProblemException(ProblemCatalog.RequestBodyUnreadable, $"The multipart body cannot be read: {RequestText.Printable(exception.Message)}");

    private static ProblemException EmptyBody() => new(ProblemCatalog.ImageMissing, "The request body is empty: it holds no image.");

    /// <summary>Whether the body is multipart/form-data (a URL-encoded form, which holds no files, is not).</summary>
    public static bool IsMultipart(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var parsed) && parsed.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase);

    private static string Boundary(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var parsed) ? HeaderUtilities.RemoveQuotes(parsed.Boundary).Value ?? "" : "";

    /// <summary>The media type without parameters, for logs and errors.</summary>
    public static string? MediaType(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var parsed) ? parsed.MediaType.Value : contentType;
}
