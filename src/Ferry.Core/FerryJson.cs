using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ferry;

/// <summary>The one JSON shape used by the API, the CLI and the files in the data directory.</summary>
public static class FerryJson
{
    public static JsonSerializerOptions Options { get; } = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    /// <summary>An enum value as the JSON spells it (running, up-to-date, stand-alone), for messages and tables.</summary>
    public static string Name<T>(T value)
        where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower));
        options.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        options.WriteIndented = false;
        return options;
    }
}
