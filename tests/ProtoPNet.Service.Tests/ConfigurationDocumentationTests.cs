using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Serving;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// Keeps the README's configuration tables true to what a user who changes nothing gets: the service's appsettings.json
/// bound onto the options classes. (appsettings.json once said <c>Batching:MaxConcurrentRuns</c> 1 while the README
/// and the class said one per core, so every deployment ran one network run at a time.)
/// </summary>
public partial class ConfigurationDocumentationTests
{
    private static readonly string ReadmePath = Path.Combine(Trainer.RepositoryRoot, "README.md");
    private static readonly string AppSettingsPath = Path.Combine(Trainer.RepositoryRoot, "src", "ProtoPNet.Service", "appsettings.json");

    private static readonly IConfiguration Shipped = new ConfigurationBuilder().AddJsonFile(AppSettingsPath).Build();

    /// <summary>Every options class: its configuration section and type (those with a <c>SectionName</c> constant).</summary>
    private static readonly Dictionary<string, Type> OptionsBySection = new[] { typeof(BatchingOptions), typeof(InferenceOptions) }
        .SelectMany(anchor => anchor.Assembly.GetTypes())
        .Select(type => (Type: type, Field: type.GetField("SectionName", BindingFlags.Public | BindingFlags.Static)))
        .Where(pair => pair.Field is { IsLiteral: true } && pair.Field.FieldType == typeof(string))
        .ToDictionary(pair => (string)pair.Field!.GetRawConstantValue()!, pair => pair.Type, StringComparer.Ordinal);

    [Fact]
    public void EveryDocumentedDefaultIsWhatTheShippedConfigurationGives()
    {
        var checkedRows = 0;
        var wrong = new List<string>();
        foreach (var (key, documented) in DocumentedDefaults())
        {
            var actual = EffectiveValue(key);
            if (actual is null) continue;   // not configuration the service binds (Urls comes from the host)
            checkedRows++;
            if (actual == NoSuchSetting)
            {
                wrong.Add($"{key}: the README documents it, but {key.Split(':')[0]}'s options class has no such setting");
                continue;
            }
            if (!string.Equals(actual, documented, StringComparison.OrdinalIgnoreCase))
            {
                wrong.Add($"{key}: README says `{documented}`, appsettings.json and the options class give `{actual}`");
            }
        }
        Assert.True(wrong.Count == 0, string.Join("; ", wrong));
        Assert.True(checkedRows >= 30, $"only {checkedRows} README rows were checked: has the table's layout changed?");
    }

    [Fact]
    public void EverySettingOfEveryOptionsClassHasAReadmeRow()
    {
        var documented = DocumentedKeys().ToHashSet(StringComparer.Ordinal);
        var missing = OptionsBySection
            .SelectMany(section => section.Value.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .Where(property => property.CanWrite)
                .Select(property => $"{section.Key}:{property.Name}"))
            .Where(key => !documented.Contains(key))
            .Order(StringComparer.Ordinal)
            .ToArray();

        Assert.Contains("Batching:MaxConcurrentRuns", documented);
        Assert.True(missing.Length == 0, "settings without a row in the README's configuration tables: " + string.Join(", ", missing));
    }

    [Fact]
    public void TheShippedConfigurationRunsOneNetworkRunPerCoreAndMeasuresTheStrategy()
    {
        var batching = new BatchingOptions();
        Shipped.GetSection(BatchingOptions.SectionName).Bind(batching);

        Assert.Equal(StrategyChoice.Auto, batching.Strategy);
        Assert.Equal(Environment.ProcessorCount, batching.ConcurrentRunsLimit);
    }

    /// <summary>
    /// The README's rows <c>| `Section:Key` | `default` | ...</c>; a row <c>| `A:B` / `C` | `1` / `2` |</c> documents A:B and
    /// A:C. Defaults that are not a value in backticks or "empty" (prose, "–") are left out.
    /// </summary>
    private static IEnumerable<(string Key, string Default)> DocumentedDefaults()
    {
        foreach (var (keys, defaults) in ConfigurationRows())
        {
            for (var i = 0; i < keys.Length; i++)
            {
                var text = (defaults.Length == keys.Length ? defaults[i] : defaults[0]).Trim();
                if (text == "empty") yield return (keys[i], "");
                else if (LeadingCode().Match(text) is { Success: true } code) yield return (keys[i], code.Groups[1].Value);
            }
        }
    }

    private static IEnumerable<string> DocumentedKeys() =>
        ConfigurationRows().SelectMany(row => row.Keys).Select(key => key.EndsWith(":<name>", StringComparison.Ordinal) ? key[..^7] : key);

    private static IEnumerable<(string[] Keys, string[] Defaults)> ConfigurationRows()
    {
        foreach (var line in File.ReadLines(ReadmePath))
        {
            var row = ConfigurationRow().Match(line);
            if (!row.Success) continue;
            var keyParts = row.Groups["keys"].Value.Split(" / ").Select(part => part.Trim().Trim('`')).ToArray();
            var section = keyParts[0].Split(':')[0];
            var keys = keyParts.Select((part, i) => i == 0 || part.Contains(':') ? part : $"{section}:{part}").ToArray();
            yield return (keys, row.Groups["defaults"].Value.Split(" / "));
        }
    }

    private const string NoSuchSetting = "\0no such setting";

    /// <summary>What a user who sets nothing gets for the key: the options class bound from appsettings.json, or the raw value.</summary>
    private static string? EffectiveValue(string key)
    {
        var separator = key.IndexOf(':');
        var (section, name) = (key[..separator], key[(separator + 1)..]);
        if (!OptionsBySection.TryGetValue(section, out var type)) return Shipped[key];
        var property = type.GetProperty(name);
        if (property is null) return NoSuchSetting;
        var options = Activator.CreateInstance(type)!;
        Shipped.GetSection(section).Bind(options);
        return property.GetValue(options) switch
        {
            null => "",
            string text => text,
            bool flag => flag ? "true" : "false",
            Enum value => value.ToString().ToLowerInvariant(),
            IEnumerable items => items.Cast<object>().Any() ? string.Join(",", items.Cast<object>()) : "[]",
            IFormattable number => number.ToString(null, CultureInfo.InvariantCulture),
            var other => other.ToString(),
        };
    }

    [GeneratedRegex(@"^\| (?<keys>`[A-Za-z]+:[^|]*?) \| (?<defaults>[^|]*?) \|")]
    private static partial Regex ConfigurationRow();

    [GeneratedRegex(@"^`([^`]*)`")]
    private static partial Regex LeadingCode();
}
