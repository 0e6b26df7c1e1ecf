# Read an environment file as systemd's EnvironmentFile= does, for deploy/cabinet:
# KEY=VALUE lines, '#' comments and blank lines skipped, a value taken whole
# (spaces and '*' as they are: RETENTION_CRON=30 3 * * *), one pair of
# surrounding double or single quotes removed. Sourced with CABINET_ENV set.
# Sourcing the file with sh instead would run "3" as a command there.
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
        '' | '#'* | ';'*) continue ;;
        *=*) ;;
        *) echo "Error: $CABINET_ENV: not KEY=VALUE: $line" >&2; exit 2 ;;
    esac
    key=${line%%=*}
    value=${line#*=}
    case "$value" in
        \"*\") value=${value#\"}; value=${value%\"} ;;
        \'*\') value=${value#\'}; value=${value%\'} ;;
    esac
    export "$key=$value"
done < "$CABINET_ENV"
