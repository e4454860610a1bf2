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
 * Checks one row sent by the sync beyond its PARAM type, and turns it into a database record.
 *
 * The checks and their order are those of docs/plugin-contract.md, section 4.1: the first failing check
 * gives the row's single warning code. Whether a user exists is asked through a callback, so this class has
 * no Moodle dependency.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
final class row_validator {

    /** @var int The longest accepted Zoho id. */
    public const ZOHOID_LENGTH = 100;

    /** @var string The row type. */
    private string $type;

    /** @var callable Tells whether a Moodle user id may own rows: function(int $userid): bool. */
    private $userexists;

    /** @var array Zoho ids already seen in this request, as keys. */
    private array $seen = [];

    /**
     * Create a validator for one request.
     *
     * @param string $type The row type.
     * @param callable $userexists function(int $userid): bool.
     */
    public function __construct(string $type, callable $userexists) {
        row_types::table($type);
        $this->type = $type;
        $this->userexists = $userexists;
    }

    /**
     * Validate one row.
     *
     * @param array $row The row as received, keyed by wire name (after Moodle's parameter validation).
     * @return array Either ['record' => array keyed by column] or ['warningcode' => string, 'field' => string,
     *     'value' => string] describing the first failed check.
     */
    public function validate(array $row): array {
        $fields = row_types::fields($this->type);
        $zohoid = (string) ($row['zoho_id'] ?? '');

        // 1. Zoho ids.
        foreach ($fields as $name => $field) {
            if ($field['kind'] !== row_types::KIND_ZOHOID) {
                continue;
            }
            $value = (string) ($row[$name] ?? '');
            $empty = $value === '' && ($field['required'] || $name === 'zoho_id');
            if ($empty || strlen($value) > self::ZOHOID_LENGTH || !preg_match('/^[A-Za-z0-9_-]*$/D', $value)) {
                return self::failure('invalidzohoid', $name, $value);
            }
        }

        // 2. Duplicates within the request.
        if (isset($this->seen[$zohoid])) {
            return self::failure('duplicatezohoid', 'zoho_id', $zohoid);
        }
        $this->seen[$zohoid] = true;

        // 3. The owner.
        if (isset($fields['userid'])) {
            $userid = (int) ($row['userid'] ?? 0);
            if ($userid <= 0 || !($this->userexists)($userid)) {
                return self::failure('invaliduserid', 'userid', (string) $userid);
            }
        }

        // 4. Everything else, in the order of the warning table.
        $order = [
            row_types::KIND_DATE => 'invaliddate',
            row_types::KIND_MONEY => 'invalidamount',
            row_types::KIND_PERCENT => 'invalidpercent',
            row_types::KIND_CURRENCY => 'invalidcurrency',
            row_types::KIND_ENUM => null,
            row_types::KIND_TEXT => 'invalidvalue',
            row_types::KIND_INT => 'invalidvalue',
        ];
        $record = [];
        foreach ($order as $kind => $code) {
            foreach ($fields as $name => $field) {
                if ($field['kind'] !== $kind) {
                    continue;
                }
                $value = $row[$name] ?? $field['default'];
                $normalised = self::normalise($field, $value);
                if ($normalised === false) {
                    return self::failure($code ?? $field['warning'], $name, (string) $value);
                }
            }
        }
        foreach ($fields as $name => $field) {
            $value = $row[$name] ?? $field['default'];
            $record[$field['column']] = self::normalise($field, $value);
        }
        return ['record' => $record];
    }

    /**
     * Normalise one value for the database.
     *
     * @param array $field The field description (row_types::fields()).
     * @param mixed $value The value as received, or its default.
     * @return mixed The value to store (null for "not set"), or false when the value is invalid.
     */
    public static function normalise(array $field, $value) {
        switch ($field['kind']) {
            case row_types::KIND_ZOHOID:
            case row_types::KIND_TEXT:
                $value = (string) ($value ?? '');
                if (isset($field['length']) && self::length($value, !empty($field['bytes'])) > $field['length']) {
                    return false;
                }
                return $value;
            case row_types::KIND_USERID:
                return (int) $value;
            case row_types::KIND_DATE:
                $value = (string) ($value ?? '');
                if ($value === '') {
                    return null;
                }
                return self::is_date($value) ? $value : false;
            case row_types::KIND_MONEY:
                $cents = money::parse((string) ($value ?? ''));
                return $cents === null ? false : money::format($cents);
            case row_types::KIND_PERCENT:
                $hundredths = money::parse_percent((string) ($value ?? ''));
                return $hundredths === null ? false : money::format($hundredths);
            case row_types::KIND_CURRENCY:
                $value = (string) ($value ?? '');
                return preg_match('/^[A-Z]{3}$/D', $value) ? $value : false;
            case row_types::KIND_ENUM:
                return in_array($value, $field['values'], true) ? $value : false;
            case row_types::KIND_INT:
                $value = (int) $value;
                if ((isset($field['min']) && $value < $field['min']) || (isset($field['max']) && $value > $field['max'])) {
                    return false;
                }
                return $value;
            case row_types::KIND_FLOAT:
                return ($value === null || $value === '') ? null : round((float) $value, 5);
        }
        throw new \InvalidArgumentException('Unknown kind: ' . $field['kind']);
    }

    /**
     * Whether a string is a real calendar date written YYYY-MM-DD.
     *
     * @param string $value The value.
     * @return bool
     */
    public static function is_date(string $value): bool {
        if (!preg_match('/^(\d{4})-(\d{2})-(\d{2})$/D', $value, $matches)) {
            return false;
        }
        return checkdate((int) $matches[2], (int) $matches[3], (int) $matches[1]);
    }

    /**
     * The length of a text in characters, or in bytes for long texts.
     *
     * @param string $value The text.
     * @param bool $bytes Count bytes rather than characters.
     * @return int
     */
    private static function length(string $value, bool $bytes): int {
        if ($bytes || !function_exists('mb_strlen')) {
            return strlen($value);
        }
        return mb_strlen($value, 'UTF-8');
    }

    /**
     * Describe a failed check.
     *
     * @param string $code The warning code.
     * @param string $field The wire name of the field.
     * @param string $value The offending value.
     * @return array
     */
    private static function failure(string $code, string $field, string $value): array {
        return ['warningcode' => $code, 'field' => $field, 'value' => $value];
    }
}
