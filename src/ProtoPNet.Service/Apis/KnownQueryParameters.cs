using System.Reflection;
using System.Text.Json;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Apis;

/// <summary>
/// Refuses a query parameter an endpoint does not take (400 invalid-parameter, with the names it does take and the
/// nearest one): <c>heatmap=png</c> for <c>heatmaps=png</c> was ignored, and the caller got an answer without heatmaps
/// and no word why. Names are matched without regard to case, as binding them does.
/// </summary>
internal static class KnownQueryParameters
{
    /// <summary>Takes the query parameters that <typeparamref name="TQuery"/> binds (its properties, camelCase) and no others.</summary>
    public static RouteHandlerBuilder TakesOnlyQueryOf<TQuery>(this RouteHandlerBuilder builder) => builder.TakesOnlyQuery(
        typeof(TQuery).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(property => property.CanWrite)
            .Select(property => JsonNamingPolicy.CamelCase.ConvertName(property.Name))
            .ToArray());

    /// <summary>Takes the query parameters named <paramref name="known"/> and no others.</summary>
    public static RouteHandlerBuilder TakesOnlyQuery(this RouteHandlerBuilder builder, params string[] known) =>
        builder.AddEndpointFilter((context, next) =>
        {
            foreach (var name in context.HttpContext.Request.Query.Keys)
            {
                if (name.Length == 0 || known.Contains(name, StringComparer.OrdinalIgnoreCase)) continue;
                var request = context.HttpContext.Request;
                var nearest = NearestName.Of(name, known);
                var shown = name.Length <= 64 ? name : name[..64] + "...";
                throw new ProblemException(ProblemCatalog.InvalidParameter,
                    $"{request.Method} {request.Path} takes no query parameter '{shown}'" +
                    (nearest is null ? "" : $" (did you mean '{nearest}'?)") + $"; it takes {string.Join(", ", known)}.");
            }
            return next(context);
        });
}
