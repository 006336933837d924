using System.Globalization;

namespace ProtoPNet.Service.Tests.Infrastructure;

/// <summary>Reads samples out of a Prometheus text exposition.</summary>
public static class PrometheusText
{
    /// <summary>Sum of the samples named <paramref name="name"/> whose labels include every one of <paramref name="labels"/> (k="v").</summary>
    public static double Sum(string text, string name, params string[] labels)
    {
        var sum = 0.0;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#') || line.Length == 0) continue;
            var nameEnd = line.IndexOfAny(['{', ' ']);
            if (line[..nameEnd] != name) continue;
            var labelText = line[nameEnd] == '{' ? line[(nameEnd + 1)..line.LastIndexOf('}')] : "";
            if (!labels.All(l => labelText.Split(',').Contains(l))) continue;
            sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        return sum;
    }

    public static async Task<string> ScrapeAsync(HttpClient client)
    {
        var response = await client.GetAsync("/metrics");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        return await response.Content.ReadAsStringAsync();
    }
}
