namespace Ferry.Cli;

public enum OutputFormat
{
    Table,
    Json,
}
