using System.Net.Http.Headers;

namespace ProtoPNet.Service.Tests.Infrastructure;

/// <summary>
/// A raw body that declares its length, sends its first <paramref name="first"/> bytes and waits for
/// <paramref name="resume"/> before the rest: a slow client. Send it with the test server's own client
/// (<c>factory.Server.CreateClient()</c>): the factory's default client buffers a body whole, to resend it on a redirect.
/// </summary>
public sealed class PausingContent : HttpContent
{
    private readonly byte[] _body;
    private readonly int _first;
    private readonly Task _resume;

    public PausingContent(byte[] body, int first, Task resume, string contentType)
    {
        (_body, _first, _resume) = (body, first, resume);
        Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);   // with its parameters (a multipart boundary)
    }

    /// <summary>The bytes sent so far.</summary>
    public int Sent { get; private set; }

    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
    {
        await stream.WriteAsync(_body.AsMemory(0, _first));
        await stream.FlushAsync();
        Sent = _first;
        await _resume;
        await stream.WriteAsync(_body.AsMemory(_first));
        Sent = _body.Length;
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _body.Length;
        return true;
    }
}
