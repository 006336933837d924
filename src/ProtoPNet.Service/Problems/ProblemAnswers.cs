using System.Globalization;
using ProtoPNet.Inference.Preprocessing;

namespace ProtoPNet.Service.Problems;

/// <summary>
/// The one place where "this request cannot be served" becomes an answer: a <see cref="ProblemException"/> carries its
/// problem kind, an <see cref="ImageRejectedException"/> maps by its rejection, and Kestrel's refusal of a body being read
/// (too slow, too large, cut short: <see cref="BadHttpRequestException"/>) by its status. A 503 gets Retry-After. Handlers and the
/// code they call throw; they never catch to build a problem themselves. Endpoints of a protocol with its own error body
/// (the Open Inference Protocol's <c>{"error": "..."}</c>) pass their own writer.
/// </summary>
public sealed class ProblemExceptionFilter(Func<HttpContext, ProblemKind, string, IResult>? writeError = null) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (ProblemException problem)
        {
            return Answer(context.HttpContext, problem.Kind, problem.Message, problem.Extensions);
        }
        catch (ImageRejectedException rejection)
        {
            return Answer(context.HttpContext, ProblemCatalog.ForRejection(rejection.Rejection), rejection.Message);
        }
        catch (BadHttpRequestException unreadable) when (!ProblemCatalog.IsBodyCutOff(unreadable))   // cut off: the client left (499)
        {
            var problem = ProblemCatalog.ForUnreadableBody(unreadable);
            return Answer(context.HttpContext, problem.Kind, problem.Message);
        }
        catch (IOException framing) when (ProblemCatalog.IsBrokenFraming(framing))
        {
            var problem = ProblemCatalog.ForBrokenFraming(framing);
            return Answer(context.HttpContext, problem.Kind, problem.Message);
        }
    }

    private IResult Answer(HttpContext context, ProblemKind kind, string detail, IReadOnlyDictionary<string, object?>? extensions = null)
    {
        if (kind.Status == StatusCodes.Status503ServiceUnavailable && ProblemCatalog.RetryAfterFor(kind.Type) is { } seconds)
        {
            context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        }
        return writeError?.Invoke(context, kind, detail) ?? ProblemCatalog.Problem(kind, detail, extensions);
    }
}

public static class ProblemAnswerExtensions
{
    /// <summary>Answers the problems the endpoints throw (see <see cref="ProblemExceptionFilter"/>); the innermost group's writer wins.</summary>
    public static TBuilder AnswerProblems<TBuilder>(this TBuilder builder, Func<HttpContext, ProblemKind, string, IResult>? writeError = null)
        where TBuilder : IEndpointConventionBuilder => builder.AddEndpointFilter(new ProblemExceptionFilter(writeError));
}
