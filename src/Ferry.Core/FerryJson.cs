using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ferry;

/// <summary>The one JSON shape used by the API, the CLI and the files in the data directory.</summary>
public static class FerryJson
{
    public static JsonSerializerOptions Options { get; } = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower));
        options.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        options.WriteIndented = false;
        return options;
    }
}
