<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\local;

/**
 * Reads and writes the plugin's tables for the web services: idempotent upserts and deletes by Zoho id.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class repository {

    /**
     * Create or update rows, each on its own; invalid rows become warnings.
     *
     * @param string $type The row type (row_types::types()).
     * @param array[] $rows The rows, keyed by wire name, as validated by the external function.
     * @return array With created, updated, unchanged (counts), results (zoho_id, id, status) and warnings
     *     (index, zoho_id, warningcode, field, value).
     */
    public static function upsert(string $type, array $rows): array {
        global $DB;

        $table = row_types::table($type);
        $rows = array_values($rows);
        $validusers = self::valid_users($type, $rows);
        $validator = new row_validator($type, fn(int $userid): bool => isset($validusers[$userid]));

        $zohoids = array_unique(array_map(fn(array $row): string => (string) ($row['zoho_id'] ?? ''), $rows));
        $existing = [];
        if ($zohoids) {
            foreach ($DB->get_records_list($table, 'zohoid', $zohoids) as $record) {
                $existing[$record->zohoid] = $record;
            }
        }

        $result = ['created' => 0, 'updated' => 0, 'unchanged' => 0, 'results' => [], 'warnings' => []];
        $now = time();
        foreach ($rows as $index => $row) {
            $checked = $validator->validate($row);
            if (!isset($checked['record'])) {
                $result['warnings'][] = [
                    'index' => $index,
                    'zoho_id' => (string) ($row['zoho_id'] ?? ''),
                    'warningcode' => $checked['warningcode'],
                    'field' => $checked['field'],
                    'value' => $checked['value'],
                ];
                continue;
            }
            $record = $checked['record'];
            $current = $existing[$record['zohoid']] ?? null;
            if ($current === null) {
                $record['timecreated'] = $now;
                $record['timemodified'] = $now;
                $id = (int) $DB->insert_record($table, (object) $record);
                $status = 'created';
            } else if (self::same($type, $current, $record)) {
                $id = (int) $current->id;
                $status = 'unchanged';
            } else {
                $record['id'] = $current->id;
                $record['timemodified'] = $now;
                $DB->update_record($table, (object) $record);
                $id = (int) $current->id;
                $status = 'updated';
            }
            $result[$status]++;
            $result['results'][] = ['zoho_id' => $record['zohoid'], 'id' => $id, 'status' => $status];
        }
        return $result;
    }

    /**
     * Delete rows by Zoho id; unknown ids are ignored.
     *
     * @param string $type The row type.
     * @param string[] $zohoids The Zoho ids.
     * @return int The number of rows deleted.
     */
    public static function delete(string $type, array $zohoids): int {
        global $DB;

        $table = row_types::table($type);
        $zohoids = array_values(array_unique(array_map('strval', $zohoids)));
        if (!$zohoids) {
            return 0;
        }
        [$insql, $params] = $DB->get_in_or_equal($zohoids);
        $count = $DB->count_records_select($table, "zohoid $insql", $params);
        if ($count) {
            $DB->delete_records_select($table, "zohoid $insql", $params);
        }
        return $count;
    }

    /**
     * One page of rows, ordered by id, in wire form.
     *
     * @param string $type The row type.
     * @param int $limitfrom Rows to skip.
     * @param int $limitnumber Rows to return, 0 for all (capped at row_types::MAX_PAGE).
     * @return array With rows (each keyed by wire name plus id and timemodified) and total.
     */
    public static function get(string $type, int $limitfrom, int $limitnumber): array {
        global $DB;

        $table = row_types::table($type);
        if ($limitnumber <= 0 || $limitnumber > row_types::MAX_PAGE) {
            $limitnumber = row_types::MAX_PAGE;
        }
        $rows = [];
        foreach ($DB->get_records($table, null, 'id ASC', '*', $limitfrom, $limitnumber) as $record) {
            $rows[] = self::to_wire($type, $record);
        }
        return ['rows' => $rows, 'total' => $DB->count_records($table)];
    }

    /**
     * Convert a database record to its wire form.
     *
     * @param string $type The row type.
     * @param \stdClass $record A record of the row type's table.
     * @return array Keyed by wire name, plus id and timemodified.
     */
    public static function to_wire(string $type, \stdClass $record): array {
        $row = ['id' => (int) $record->id];
        foreach (row_types::fields($type) as $name => $field) {
            $row[$name] = self::stored_value($field, $record->{$field['column']} ?? null);
        }
        $row['timemodified'] = (int) $record->timemodified;
        return $row;
    }

    /**
     * A value read from the database, normalised the way incoming values are.
     *
     * @param array $field The field description.
     * @param mixed $value The database value.
     * @return mixed
     */
    public static function stored_value(array $field, $value) {
        switch ($field['kind']) {
            case row_types::KIND_MONEY:
            case row_types::KIND_PERCENT:
                return money::normalise($value ?? '0');
            case row_types::KIND_FLOAT:
                return ($value === null || $value === '') ? null : round((float) $value, 5);
            case row_types::KIND_INT:
            case row_types::KIND_USERID:
                return (int) $value;
            case row_types::KIND_DATE:
                return ($value === null || $value === '') ? null : (string) $value;
            default:
                return (string) ($value ?? '');
        }
    }

    /**
     * Whether a stored record already holds the given values.
     *
     * @param string $type The row type.
     * @param \stdClass $current The stored record.
     * @param array $record The validated record, keyed by column.
     * @return bool
     */
    private static function same(string $type, \stdClass $current, array $record): bool {
        foreach (row_types::fields($type) as $field) {
            $column = $field['column'];
            if (self::stored_value($field, $current->$column) !== self::stored_value($field, $record[$column])) {
                return false;
            }
        }
        return true;
    }

    /**
     * The user ids of the batch that may own rows: existing, not deleted, not the guest user.
     *
     * @param string $type The row type.
     * @param array[] $rows The rows.
     * @return array User ids as keys.
     */
    private static function valid_users(string $type, array $rows): array {
        global $CFG, $DB;

        if (!row_types::has_user($type)) {
            return [];
        }
        $userids = array_filter(array_unique(array_map(fn(array $row): int => (int) ($row['userid'] ?? 0), $rows)));
        if (!$userids) {
            return [];
        }
        $valid = [];
        foreach ($DB->get_records_list('user', 'id', $userids, '', 'id, deleted') as $user) {
            if (!$user->deleted && (int) $user->id !== (int) $CFG->siteguest) {
                $valid[(int) $user->id] = true;
            }
        }
        return $valid;
    }
}
